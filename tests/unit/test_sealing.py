import base64

import pytest

from plugyard.vault.sealing import Sealer, SealingError, associated_data, generate_key, parse_key


def test_values_round_trip_and_ciphertexts_differ() -> None:
    sealer = Sealer(parse_key(generate_key()))
    aad = associated_data("t", "scope", "API_KEY")
    one, two = sealer.seal("hunter2", aad), sealer.seal("hunter2", aad)
    assert one != two
    assert b"hunter2" not in one
    assert sealer.open(one, aad, key_id=sealer.key_id) == "hunter2"


def test_another_row_another_key_or_tampering_do_not_open() -> None:
    sealer = Sealer(parse_key(generate_key()))
    sealed = sealer.seal("v", associated_data("t", "s", "A"))
    with pytest.raises(SealingError, match="authenticate"):
        sealer.open(sealed, associated_data("t", "s", "B"), key_id=sealer.key_id)
    with pytest.raises(SealingError, match="authenticate"):
        sealer.open(
            sealed[:-1] + bytes([sealed[-1] ^ 1]), associated_data("t", "s", "A"), key_id=sealer.key_id
        )
    other = Sealer(parse_key(generate_key()))
    with pytest.raises(SealingError, match="sealed under key"):
        other.open(sealed, associated_data("t", "s", "A"), key_id=sealer.key_id)


def test_keys_must_be_base64_of_32_bytes() -> None:
    assert Sealer.from_setting(None) is None
    assert Sealer.from_setting("") is None
    with pytest.raises(ValueError, match="32 bytes"):
        parse_key(base64.b64encode(b"short").decode())
    with pytest.raises(ValueError, match="base64"):
        parse_key("not base64!")
