"""Personal-data preview and replacement, on synthetic data only.

Every name, number and address here is made up: 555-01xx phone numbers, the card industry's test
numbers (4111 1111 1111 1111, 5555 5555 5555 4444), example.com/org mail, documentation IPs
(192.0.2.0/24, 2001:db8::/32). Expected findings and placeholders are counted by hand; spans
come from ``str.index`` on the test text.
"""

from __future__ import annotations

import pytest
from stdnum import luhn

from engine.configs import from_dict, to_dict
from engine.data.pii import PiiConfig, apply, preview, scan_text
from engine.errors import Cancelled, ConfigError, DataError
from engine.progress import CancelToken, Progress


def example(eid: int, *contents: str, roles: tuple[str, ...] = ()) -> dict:
    roles = roles or tuple("user" if i % 2 == 0 else "assistant" for i in range(len(contents)))
    return {"id": eid, "messages": [{"role": r, "content": c} for r, c in zip(roles, contents)],
            "tags": [], "source_file": None, "source_line": None}


def found(text: str, **config: object) -> list[tuple[str, str]]:
    return [(m.kind, m.text) for m in scan_text(text, PiiConfig(**config))]


def test_each_kind_is_found_with_its_span_and_placeholder() -> None:
    text = ("I am Alice Example, write to alice@example.com or call (202) 555-0123. "
            "Server 192.0.2.10, card 4111 1111 1111 1111, "
            "link https://example.org/reset?token=s3cr3t.")
    result = preview([example(7, text)], PiiConfig(names=("Alice Example",)))
    expected = [("name", "Alice Example", "<NAME_1>"), ("email", "alice@example.com", "<EMAIL_1>"),
                ("phone", "(202) 555-0123", "<PHONE_1>"), ("ip", "192.0.2.10", "<IP_1>"),
                ("card", "4111 1111 1111 1111", "<CARD_1>"),
                ("url", "https://example.org/reset?token=s3cr3t", "<URL_1>")]
    assert [(f.kind, f.text, f.placeholder) for f in result.findings] == expected
    for f, (_, matched, _) in zip(result.findings, expected):
        assert (f.example_id, f.message_index, f.role) == (7, 0, "user")
        assert (f.start, f.end) == (text.index(matched), text.index(matched) + len(matched))
    assert result.counts == {"name": 1, "email": 1, "phone": 1, "ip": 1, "card": 1, "url": 1}
    assert result.examples_scanned == 1


def test_same_value_gets_same_placeholder_across_examples() -> None:
    first = example(1, "Mail Bob@Example.org or bob@example.org, phone (202) 555-0142.",
                    "Also carol@example.com and 5555 5555 5555 4444.")
    second = example(2, "BOB@EXAMPLE.ORG again; +1 202-555-0142 or 202.555.0199; "
                        "5555-5555-5555-4444 and 4111111111111111.")
    result = preview(iter([first, second]))  # a one-shot iterator: preview needs one pass
    got = [(f.example_id, f.text, f.placeholder) for f in result.findings]
    assert got == [
        (1, "Bob@Example.org", "<EMAIL_1>"), (1, "bob@example.org", "<EMAIL_1>"),
        (1, "(202) 555-0142", "<PHONE_1>"),
        (1, "carol@example.com", "<EMAIL_2>"), (1, "5555 5555 5555 4444", "<CARD_1>"),
        (2, "BOB@EXAMPLE.ORG", "<EMAIL_1>"), (2, "+1 202-555-0142", "<PHONE_1>"),
        (2, "202.555.0199", "<PHONE_2>"), (2, "5555-5555-5555-4444", "<CARD_1>"),
        (2, "4111111111111111", "<CARD_2>"),
    ]
    assert result.counts == {"email": 4, "phone": 3, "card": 3}
    assert result.placeholders["<PHONE_1>"] == "+12025550142"
    assert result.placeholders["<CARD_1>"] == "5555555555554444"
    assert result.placeholders["<EMAIL_1>"] == "bob@example.org"


@pytest.mark.parametrize("text", [
    "Card 4111 1111 1111 1112 was declined.",           # Luhn-invalid 16 digits
    "Upgrade to version 1.2.3.4.5 tonight.",            # dotted version string, not an IP
    "Order number 12345678 ships on 2024-03-15.",       # order number and an ISO date
    "Meeting on 15/03/2024 at 12:30:45.",               # date and time
    "Order 3104248, ticket 13105945.",                  # bare short runs the US metadata accepts
    "Docs at https://example.com/docs?page=2&lang=en",  # URL without a secret
    "Local service on 127.0.0.1 and ::1.",              # loopback identifies nobody
])
def test_negatives_are_not_flagged(text: str) -> None:
    assert found(text) == []


def test_luhn_valid_number_without_a_card_prefix_is_not_flagged() -> None:
    digits = "999999999999999"
    number = digits + luhn.calc_check_digit(digits)
    assert luhn.is_valid(number)
    assert found(f"Order {number} is on its way.") == []


def test_card_prefix_of_a_longer_digit_run_is_not_flagged() -> None:
    visa19 = "411111111111111111" + luhn.calc_check_digit("411111111111111111")
    grouped = " ".join(visa19[i:i + 4] for i in range(0, 19, 4))
    assert found(f"Card {grouped}.") == [("card", grouped)]
    assert found(f"Ref {grouped} 2222.") == []  # 23 digits: the first 19 are no card of their own
    assert found("Ref 2222 4111 1111 1111 1111.") == []  # nor are the last 16 of 20


def test_email_inside_secret_url_is_part_of_the_url() -> None:
    url = "https://alice:hunter2@example.org/inbox?user=alice@example.com"
    assert found(f"Open {url} now") == [("url", url)]
    assert found("Signed https://example.com/f.pdf?X-Amz-Signature=ab12, ok") == [
        ("url", "https://example.com/f.pdf?X-Amz-Signature=ab12")]


def test_email_inside_plain_url_is_flagged_alone() -> None:
    assert found("See https://example.com/u?mail=dana@example.com.") == [
        ("email", "dana@example.com")]


def test_ipv6_and_phone_region() -> None:
    assert found("Host 2001:db8::17 replied.") == [("ip", "2001:db8::17")]
    uk = "Ring 020 7946 0958 or +1 202-555-0100."
    assert found(uk, phone_region="GB") == [("phone", "020 7946 0958"), ("phone", "+1 202-555-0100")]
    assert found(uk, phone_region="") == [("phone", "+1 202-555-0100")]


def test_names_only_from_the_list_whole_words_any_case() -> None:
    text = "ALICE  EXAMPLE met Alicent, Malice and Bob Example; 我叫王小明。"
    assert found(text, names=("alice example", "Alice", "王小明")) == [
        ("name", "ALICE  EXAMPLE"), ("name", "王小明")]
    assert found(text) == []  # no names list: no names guessed


def test_cjk_text_keeps_offsets_right() -> None:
    text = "你好，我的邮箱是alice@example.com，电话(202) 555-0187，IP是192.0.2.33。谢谢！"
    result = preview([example(3, text)])
    assert [(f.kind, text[f.start:f.end]) for f in result.findings] == [
        ("email", "alice@example.com"), ("phone", "(202) 555-0187"), ("ip", "192.0.2.33")]
    (changed,) = apply([example(3, text)], result)
    assert changed["messages"][0]["content"] == "你好，我的邮箱是<EMAIL_1>，电话<PHONE_1>，IP是<IP_1>。谢谢！"


def test_apply_replaces_only_changed_examples_and_honours_skip() -> None:
    data = [example(1, "Mail alice@example.com", "Sure, alice@example.com it is."),
            example(2, "Nothing personal here."),
            example(3, "Call (202) 555-0111.")]
    originals = [dict(e, messages=[dict(m) for m in e["messages"]]) for e in data]
    result = preview(data)
    skipped = result.findings[1].key
    assert skipped == (1, 1, 6)
    out = list(apply(iter(data), result, skip={skipped}))
    assert [e["id"] for e in out] == [1, 3]
    assert out[0]["messages"] == [{"role": "user", "content": "Mail <EMAIL_1>"},
                                  {"role": "assistant", "content": "Sure, alice@example.com it is."}]
    assert out[1]["messages"][0]["content"] == "Call <PHONE_1>."
    assert data == originals  # inputs untouched


def test_roles_limit_what_is_scanned() -> None:
    data = [example(1, "sys bob@example.org", "user bob@example.org", "bot bob@example.org",
                    roles=("system", "user", "assistant"))]
    result = preview(data, PiiConfig(roles=("user",)))
    assert [(f.message_index, f.role) for f in result.findings] == [(1, "user")]


def test_numbering_continues_after_placeholders_already_in_the_data() -> None:
    result = preview([example(1, "Earlier <EMAIL_2> was masked; now erin@example.com.")])
    assert [f.placeholder for f in result.findings] == ["<EMAIL_3>"]


def test_apply_refuses_stale_preview_and_unknown_skip_keys() -> None:
    result = preview([example(1, "Mail alice@example.com")])
    with pytest.raises(DataError, match="run the preview again"):
        list(apply([example(1, "Mail: alice@example.com")], result))
    with pytest.raises(ConfigError, match="skip"):
        list(apply([example(1, "Mail alice@example.com")], result, skip={(9, 0, 0)}))


def test_progress_and_cancel() -> None:
    events: list[Progress] = []
    preview([example(i, "x") for i in range(3)], report=events.append)
    assert (events[-1].stage, events[-1].step, events[-1].total) == ("pii_preview", 3, 3)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        preview([example(1, "x")], cancel=token)
    with pytest.raises(Cancelled):
        list(apply([example(1, "x")], preview([]), cancel=token))


@pytest.mark.parametrize("bad, field", [
    ({"kinds": ("email", "ssn")}, "kinds"), ({"roles": ("tool",)}, "roles"),
    ({"phone_region": "XX"}, "phone_region"), ({"names": ("Alice", " ")}, "names"),
])
def test_config_validation_names_the_field(bad: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        PiiConfig(**bad)


def test_config_round_trips_through_json_lists() -> None:
    config = PiiConfig(kinds=("email", "name"), names=("Alice Example",), phone_region="GB")
    as_json = {k: list(v) if isinstance(v, tuple) else v for k, v in to_dict(config).items()}
    assert from_dict(PiiConfig, as_json) == config
