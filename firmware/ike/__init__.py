"""IKEv1/ISAKMP (RFC 2407, 2408, 2409, 3947, 3706): wire codec and proposal model.

constants  numbers and names;  payloads  payload chain and typed payloads (IkeMalformed);
message    header and whole messages;  proposals  ProposalSet, default sets, responder choice;
vendor     vendor IDs;  natd  NAT-D/NAT-OA;  fragments  type-132 fragment reassembly.
"""
