"""The peer lab: real strongSwan, libreswan, xl2tpd and pppd in QEMU guests, Sluice on the host (issue 4)."""
