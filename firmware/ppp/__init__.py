"""PPP for L2TP sessions (RFC 1661/1662): sans-IO, MicroPython-compatible.

`link.PppLink` is the entry point (docs/design.md, PPP); `fsm` is the RFC 1661 automaton; `lcp`, `ipcp`,
`ipv6cp` judge options; `pap`, `chap`, `mschapv2` authenticate; `framing` parses frames and control packets.
"""
