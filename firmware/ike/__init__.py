"""IKEv1/ISAKMP (RFC 2407, 2408, 2409, 3947, 3706): wire codec, proposals and the exchanges, sans-IO.

Codec:      constants (numbers and names), payloads (payload chain, typed payloads, IkeMalformed),
            message (header and whole messages), vendor (vendor IDs), natd (NAT-D/NAT-OA),
            fragments (type-132 fragment reassembly), proposals (ProposalSet, default sets, choice).
Exchanges:  keys (SKEYID, KEYMAT), crypt (phase-1 encryption, IV chaining), ikesa (one ISAKMP SA and its
            retransmission), main_mode, quick_mode, informational, dpd, natt, certs (X.509 checks).
Front:      table.IkeTable, the one object the engine drives; events for what it reports.
"""
