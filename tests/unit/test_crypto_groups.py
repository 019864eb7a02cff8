"""DH group parameters against their definitions, independently of the hex in groups.py.

MODP (RFC 2409 6.2, RFC 3526 2-5): p = 2^n - 2^(n-64) - 1 + 2^64 * (floor(2^(n-130) pi) + k), with pi
computed here by Machin's formula; p and (p-1)/2 must both be prime (safe prime). ECP (RFC 5903 3.1,
3.2): the generator lies on the curve and OpenSSL's own P-256/P-384 agree with our parameters.
"""

import random

import pytest

from sluice.hal.crypto import groups

# (n, k) per group: RFC 2409 6.2 (group 2), RFC 3526 2 (5), 3 (14), 4 (15), 5 (16).
DEFINITIONS = {2: (1024, 129093), 5: (1536, 741804), 14: (2048, 124476), 15: (3072, 1690314), 16: (4096, 240904)}


def _atan_inv(x, one):
    total = term = one // x
    x2 = x * x
    n, sign = 1, -1
    while term:
        term //= x2
        n += 2
        total += sign * (term // n)
        sign = -sign
    return total


def _floor_pi_times_2_to(bits):
    guard = 64
    one = 1 << (bits + guard)
    return (16 * _atan_inv(5, one) - 4 * _atan_inv(239, one)) >> guard


def _probably_prime(n, rounds=6):
    rnd = random.Random(1)
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for _ in range(rounds):
        x = pow(rnd.randrange(2, n - 2), d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


@pytest.mark.parametrize("group", sorted(DEFINITIONS))
def test_modp_prime_matches_rfc_formula(group):
    n, k = DEFINITIONS[group]
    expected = 2 ** n - 2 ** (n - 64) - 1 + 2 ** 64 * (_floor_pi_times_2_to(n - 130) + k)
    p, g = groups.modp(group)
    assert p == expected
    assert g == 2
    assert groups.public_len(group) * 8 == n


@pytest.mark.parametrize("group", [2, 5, 14])
def test_modp_prime_is_safe(group):
    p, _ = groups.modp(group)
    assert _probably_prime(p) and _probably_prime((p - 1) // 2)


@pytest.mark.parametrize("group,curve", [(19, "SECP256R1"), (20, "SECP384R1")])
def test_ecp_parameters_match_openssl(group, curve):
    from cryptography.hazmat.primitives.asymmetric import ec
    p, a, b, gx, gy, n = groups.ecp(group)
    assert (gy * gy - (gx ** 3 + a * gx + b)) % p == 0
    c = getattr(ec, curve)()
    one = ec.derive_private_key(1, c).public_key().public_numbers()
    assert (one.x, one.y) == (gx, gy)
    minus_one = ec.derive_private_key(n - 1, c).public_key().public_numbers()
    assert (minus_one.x, minus_one.y) == (gx, (-gy) % p)  # n is the order: (n-1)G = -G


def test_unknown_group():
    with pytest.raises(groups.UnknownGroup):
        groups.modp(1)
    with pytest.raises(groups.UnknownGroup):
        groups.public_len(99)
