"""IPv6 inside the tunnel: address text, and the Neighbor Discovery messages a PPP link needs (RS, RA)."""
