"""DHCP inside the tunnel: answering a PPP client's DHCPINFORM with routes and DNS (see dhcp.inform)."""
