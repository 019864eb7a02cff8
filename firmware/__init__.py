"""Sluice: an L2TP/IPsec VPN engine for small routers."""
__version__ = "0.1.0"
