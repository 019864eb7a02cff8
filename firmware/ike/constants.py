"""ISAKMP/IKEv1 numbers: exchange and payload types, IPsec DOI attribute tables, notify types.

Sources: RFC 2408 (ISAKMP) 3.1-3.16 and appendix A, RFC 2409 (IKE) appendix A, RFC 2407 (IPsec DOI) 4.4-4.6,
RFC 3947 (NAT-T) and its drafts, RFC 3706 (DPD), RFC 4106 (AES-GCM in ESP), RFC 4868/IANA "IPsec registry".
Names tables (`*_NAMES`) exist for error messages and diagnostics only.
"""

# RFC 2408 3.1: version 1.0 is major 1, minor 0 in one octet.
VERSION = 0x10
HEADER_LEN = 28
GENERIC_LEN = 4

# RFC 2408 3.1 exchange types (4.4-4.8), RFC 2409 5.5 (Quick Mode = 32).
EXCH_BASE = 1
EXCH_MAIN = 2           # Identity Protection
EXCH_AUTH_ONLY = 3
EXCH_AGGRESSIVE = 4
EXCH_INFORMATIONAL = 5
EXCH_QUICK = 32
EXCH_TRANSACTION = 6    # mode config (draft-dukes-ike-mode-cfg)
EXCHANGE_NAMES = {1: "Base", 2: "Main", 3: "Authentication Only", 4: "Aggressive", 5: "Informational",
                  6: "Transaction", 32: "Quick"}

# RFC 2408 3.1 flags.
FLAG_E = 0x01   # encryption: payloads after the header are encrypted
FLAG_C = 0x02   # commit
FLAG_A = 0x04   # authentication only

# RFC 2408 3.1 payload types, RFC 3947 5 (NAT-D 20, NAT-OA 21), draft-ietf-ipsec-nat-t-ike-02/03 (130, 131),
# Cisco/Microsoft fragmentation 132 (strongSwan PLV1_FRAGMENT, Wireshark "Cisco fragmentation").
PT_NONE = 0
PT_SA = 1
PT_PROPOSAL = 2
PT_TRANSFORM = 3
PT_KE = 4
PT_ID = 5
PT_CERT = 6
PT_CR = 7
PT_HASH = 8
PT_SIG = 9
PT_NONCE = 10
PT_NOTIFY = 11
PT_DELETE = 12
PT_VENDOR = 13
PT_ATTRIBUTE = 14       # mode config / XAUTH; parsed as opaque here
PT_NAT_D = 20
PT_NAT_OA = 21
PT_NAT_D_DRAFT = 130
PT_NAT_OA_DRAFT = 131
PT_FRAGMENT = 132
PAYLOAD_NAMES = {0: "NONE", 1: "SA", 2: "Proposal", 3: "Transform", 4: "KE", 5: "ID", 6: "CERT", 7: "CR",
                 8: "HASH", 9: "SIG", 10: "NONCE", 11: "NOTIFY", 12: "DELETE", 13: "VENDOR", 14: "ATTRIBUTE",
                 20: "NAT-D", 21: "NAT-OA", 130: "NAT-D(draft)", 131: "NAT-OA(draft)", 132: "FRAGMENT"}

# RFC 2407 4.2 / RFC 2408 A.2.
DOI_ISAKMP = 0
DOI_IPSEC = 1
# RFC 2407 4.2 situation bits; only identity-only is supported (the others add labelled-domain fields).
SIT_IDENTITY_ONLY = 0x01
SIT_SECRECY = 0x02
SIT_INTEGRITY = 0x04

# RFC 2407 4.4.1 protocol identifiers.
PROTO_ISAKMP = 1
PROTO_IPSEC_AH = 2
PROTO_IPSEC_ESP = 3
PROTO_IPCOMP = 4
PROTO_NAMES = {1: "ISAKMP", 2: "AH", 3: "ESP", 4: "IPCOMP"}

# RFC 2407 4.4.2 ISAKMP transform id.
KEY_IKE = 1

# RFC 2407 4.4.4 ESP transform identifiers; RFC 4106 8.1 (AES-GCM-16 = 20, with the key length attribute).
ESP_DES = 2
ESP_3DES = 3
ESP_NULL = 11
ESP_AES_CBC = 12
ESP_AES_GCM_8 = 18
ESP_AES_GCM_12 = 19
ESP_AES_GCM_16 = 20
ESP_TRANSFORM_NAMES = {2: "des", 3: "3des", 11: "null", 12: "aes", 18: "aesgcm8", 19: "aesgcm12",
                       20: "aesgcm16"}

# RFC 2409 appendix A: phase 1 attribute classes.
P1_ENCRYPTION = 1
P1_HASH = 2
P1_AUTH = 3
P1_GROUP_DESC = 4
P1_GROUP_TYPE = 5
P1_GROUP_PRIME = 6
P1_GROUP_GEN1 = 7
P1_GROUP_GEN2 = 8
P1_GROUP_CURVE_A = 9
P1_GROUP_CURVE_B = 10
P1_LIFE_TYPE = 11
P1_LIFE_DURATION = 12
P1_PRF = 13
P1_KEY_LENGTH = 14
P1_FIELD_SIZE = 15
P1_GROUP_ORDER = 16
# Classes whose value is variable length (TLV allowed); the rest must be basic (TV), RFC 2409 appendix A.
P1_VARIABLE = (P1_GROUP_PRIME, P1_GROUP_GEN1, P1_GROUP_GEN2, P1_GROUP_CURVE_A, P1_GROUP_CURVE_B,
               P1_LIFE_DURATION, P1_GROUP_ORDER)
P1_ATTR_NAMES = {1: "Encryption", 2: "Hash", 3: "Authentication", 4: "Group Description", 5: "Group Type",
                 6: "Group Prime", 7: "Group Generator One", 8: "Group Generator Two", 9: "Group Curve A",
                 10: "Group Curve B", 11: "Life Type", 12: "Life Duration", 13: "PRF", 14: "Key Length",
                 15: "Field Size", 16: "Group Order"}

# RFC 2409 appendix A encryption algorithms; AES-CBC 7 from RFC 3602 / IANA.
ENCR_DES = 1
ENCR_3DES = 5
ENCR_AES_CBC = 7
P1_ENCR_NAMES = {1: "des", 2: "idea", 3: "blowfish", 4: "rc5", 5: "3des", 6: "cast", 7: "aes", 8: "camellia"}

# RFC 2409 appendix A hash algorithms; SHA2 4/5/6 from RFC 4868 / IANA.
HASH_MD5 = 1
HASH_SHA1 = 2
HASH_SHA2_256 = 4
HASH_SHA2_384 = 5
HASH_SHA2_512 = 6
P1_HASH_NAMES = {1: "md5", 2: "sha1", 3: "tiger", 4: "sha256", 5: "sha384", 6: "sha512"}

# RFC 2409 appendix A authentication methods; XAUTH values from draft-ietf-ipsec-isakmp-xauth-06 (IANA).
AUTH_PSK = 1
AUTH_DSS = 2
AUTH_RSA_SIG = 3
AUTH_RSA_ENC = 4
AUTH_RSA_ENC_REV = 5
AUTH_ECDSA_256 = 9
AUTH_ECDSA_384 = 10
AUTH_ECDSA_521 = 11
AUTH_XAUTH_INIT_PSK = 65001
AUTH_XAUTH_RESP_PSK = 65002
AUTH_XAUTH_INIT_DSS = 65003
AUTH_XAUTH_RESP_DSS = 65004
AUTH_XAUTH_INIT_RSA = 65005
AUTH_XAUTH_RESP_RSA = 65006
AUTH_NAMES = {1: "psk", 2: "dss", 3: "rsasig", 4: "rsaenc", 5: "rsaenc-revised", 9: "ecdsa256", 10: "ecdsa384",
              11: "ecdsa521", 65001: "xauth-init-psk", 65002: "xauth-resp-psk", 65003: "xauth-init-dss",
              65004: "xauth-resp-dss", 65005: "xauth-init-rsa", 65006: "xauth-resp-rsa"}

# RFC 2409 6 / RFC 3526 / RFC 5903 (IANA "Group Description").
GROUP_MODP768 = 1
GROUP_MODP1024 = 2
GROUP_MODP1536 = 5
GROUP_MODP2048 = 14
GROUP_MODP3072 = 15
GROUP_MODP4096 = 16
GROUP_ECP256 = 19
GROUP_ECP384 = 20
GROUP_NAMES = {1: "modp768", 2: "modp1024", 5: "modp1536", 14: "modp2048", 15: "modp3072", 16: "modp4096",
               17: "modp6144", 18: "modp8192", 19: "ecp256", 20: "ecp384", 21: "ecp521"}

# RFC 2407 4.5 life types (phase 1 uses the same values, RFC 2409 appendix A).
LIFE_SECONDS = 1
LIFE_KILOBYTES = 2

# RFC 2407 4.5 IPsec SA attribute classes.
P2_LIFE_TYPE = 1
P2_LIFE_DURATION = 2
P2_GROUP_DESC = 3
P2_ENCAP_MODE = 4
P2_AUTH_ALG = 5
P2_KEY_LENGTH = 6
P2_KEY_ROUNDS = 7
P2_COMP_DICT_SIZE = 8
P2_COMP_PRIVATE_ALG = 9
P2_VARIABLE = (P2_LIFE_DURATION, P2_COMP_PRIVATE_ALG)
P2_ATTR_NAMES = {1: "SA Life Type", 2: "SA Life Duration", 3: "Group Description", 4: "Encapsulation Mode",
                 5: "Authentication Algorithm", 6: "Key Length", 7: "Key Rounds",
                 8: "Compress Dictionary Size", 9: "Compress Private Algorithm"}

# RFC 2407 4.5 encapsulation modes; RFC 3947 5.1 (3, 4); draft-ietf-ipsec-nat-t-ike-02/03 (61443, 61444).
ENCAP_TUNNEL = 1
ENCAP_TRANSPORT = 2
ENCAP_UDP_TUNNEL = 3
ENCAP_UDP_TRANSPORT = 4
ENCAP_UDP_TUNNEL_DRAFT = 61443
ENCAP_UDP_TRANSPORT_DRAFT = 61444
ENCAP_NAMES = {1: "tunnel", 2: "transport", 3: "udp-tunnel", 4: "udp-transport", 61443: "udp-tunnel(draft)",
               61444: "udp-transport(draft)"}
ENCAP_TRANSPORT_MODES = (ENCAP_TRANSPORT, ENCAP_UDP_TRANSPORT, ENCAP_UDP_TRANSPORT_DRAFT)
ENCAP_TUNNEL_MODES = (ENCAP_TUNNEL, ENCAP_UDP_TUNNEL, ENCAP_UDP_TUNNEL_DRAFT)

# RFC 2407 4.5 authentication algorithms; RFC 4868 (SHA2: 5, 6, 7).
AALG_HMAC_MD5 = 1
AALG_HMAC_SHA1 = 2
AALG_HMAC_SHA2_256 = 5
AALG_HMAC_SHA2_384 = 6
AALG_HMAC_SHA2_512 = 7
AALG_NAMES = {1: "md5", 2: "sha1", 3: "desmac", 4: "kpdk", 5: "sha256", 6: "sha384", 7: "sha512", 9: "aesxcbc"}

# RFC 2407 4.6.2.1 identification types.
ID_IPV4_ADDR = 1
ID_FQDN = 2
ID_USER_FQDN = 3
ID_IPV4_ADDR_SUBNET = 4
ID_IPV6_ADDR = 5
ID_IPV6_ADDR_SUBNET = 6
ID_IPV4_ADDR_RANGE = 7
ID_IPV6_ADDR_RANGE = 8
ID_DER_ASN1_DN = 9
ID_DER_ASN1_GN = 10
ID_KEY_ID = 11
ID_NAMES = {1: "ID_IPV4_ADDR", 2: "ID_FQDN", 3: "ID_USER_FQDN", 4: "ID_IPV4_ADDR_SUBNET", 5: "ID_IPV6_ADDR",
            6: "ID_IPV6_ADDR_SUBNET", 7: "ID_IPV4_ADDR_RANGE", 8: "ID_IPV6_ADDR_RANGE", 9: "ID_DER_ASN1_DN",
            10: "ID_DER_ASN1_GN", 11: "ID_KEY_ID"}
# Fixed data lengths per ID type (RFC 2407 4.6.2.2-4.6.2.12).
ID_FIXED_LEN = {1: 4, 4: 8, 5: 16, 6: 32, 7: 8, 8: 32}

# RFC 2408 3.9 certificate encodings.
CERT_X509_SIG = 4
CERT_CRL = 7

# RFC 2408 3.14.1 notify message types (errors 1-30), RFC 2407 4.6.3 status types, RFC 3706 (DPD).
N_INVALID_PAYLOAD_TYPE = 1
N_DOI_NOT_SUPPORTED = 2
N_SITUATION_NOT_SUPPORTED = 3
N_INVALID_COOKIE = 4
N_INVALID_MAJOR_VERSION = 5
N_INVALID_MINOR_VERSION = 6
N_INVALID_EXCHANGE_TYPE = 7
N_INVALID_FLAGS = 8
N_INVALID_MESSAGE_ID = 9
N_INVALID_PROTOCOL_ID = 10
N_INVALID_SPI = 11
N_INVALID_TRANSFORM_ID = 12
N_ATTRIBUTES_NOT_SUPPORTED = 13
N_NO_PROPOSAL_CHOSEN = 14
N_BAD_PROPOSAL_SYNTAX = 15
N_PAYLOAD_MALFORMED = 16
N_INVALID_KEY_INFORMATION = 17
N_INVALID_ID_INFORMATION = 18
N_INVALID_CERT_ENCODING = 19
N_INVALID_CERTIFICATE = 20
N_CERT_TYPE_UNSUPPORTED = 21
N_INVALID_CERT_AUTHORITY = 22
N_INVALID_HASH_INFORMATION = 23
N_AUTHENTICATION_FAILED = 24
N_INVALID_SIGNATURE = 25
N_ADDRESS_NOTIFICATION = 26
N_NOTIFY_SA_LIFETIME = 27
N_CERTIFICATE_UNAVAILABLE = 28
N_UNSUPPORTED_EXCHANGE_TYPE = 29
N_UNEQUAL_PAYLOAD_LENGTHS = 30
N_CONNECTED = 16384
N_RESPONDER_LIFETIME = 24576
N_REPLAY_STATUS = 24577
N_INITIAL_CONTACT = 24578
N_R_U_THERE = 36136
N_R_U_THERE_ACK = 36137
NOTIFY_NAMES = {1: "INVALID-PAYLOAD-TYPE", 2: "DOI-NOT-SUPPORTED", 3: "SITUATION-NOT-SUPPORTED",
                4: "INVALID-COOKIE", 5: "INVALID-MAJOR-VERSION", 6: "INVALID-MINOR-VERSION",
                7: "INVALID-EXCHANGE-TYPE", 8: "INVALID-FLAGS", 9: "INVALID-MESSAGE-ID",
                10: "INVALID-PROTOCOL-ID", 11: "INVALID-SPI", 12: "INVALID-TRANSFORM-ID",
                13: "ATTRIBUTES-NOT-SUPPORTED", 14: "NO-PROPOSAL-CHOSEN", 15: "BAD-PROPOSAL-SYNTAX",
                16: "PAYLOAD-MALFORMED", 17: "INVALID-KEY-INFORMATION", 18: "INVALID-ID-INFORMATION",
                19: "INVALID-CERT-ENCODING", 20: "INVALID-CERTIFICATE", 21: "CERT-TYPE-UNSUPPORTED",
                22: "INVALID-CERT-AUTHORITY", 23: "INVALID-HASH-INFORMATION", 24: "AUTHENTICATION-FAILED",
                25: "INVALID-SIGNATURE", 26: "ADDRESS-NOTIFICATION", 27: "NOTIFY-SA-LIFETIME",
                28: "CERTIFICATE-UNAVAILABLE", 29: "UNSUPPORTED-EXCHANGE-TYPE", 30: "UNEQUAL-PAYLOAD-LENGTHS",
                16384: "CONNECTED", 24576: "RESPONDER-LIFETIME", 24577: "REPLAY-STATUS",
                24578: "INITIAL-CONTACT", 36136: "R-U-THERE", 36137: "R-U-THERE-ACK"}

# RFC 3947 5.2 NAT-OA ID types.
NATOA_IPV4 = ID_IPV4_ADDR
NATOA_IPV6 = ID_IPV6_ADDR
