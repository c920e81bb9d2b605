"""The home page's words for a flag's reason, where the page's data cannot reach them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from api.flags.evaluate import Evaluation, Reason
from api.web.pages import explain, percent

PATHS = {1: "Acme Retail", 10: "Acme Retail / Paris"}
NODE_10 = {"override": "node", "nodeId": 10}
NODE_99 = {"override": "node", "nodeId": 99}


@pytest.mark.parametrize(
    ("evaluation", "rollout", "words"),
    [
        (Evaluation("k", True, Reason.TARGETING_MATCH, "on", metadata=NODE_10), Decimal(0),
         "on: override for Acme Retail / Paris"),
        (Evaluation("k", True, Reason.TARGETING_MATCH, "on", metadata=NODE_99), Decimal(0),
         "on: override for your organisation"),
        (Evaluation("k", False, Reason.ERROR, error_code="FLAG_NOT_FOUND"), None,
         "off: could not be evaluated (FLAG_NOT_FOUND)"),
        (Evaluation("k", False, Reason.SPLIT, "off"), None, "off: split"),
        (Evaluation("k", 24, Reason.TARGETING_MATCH, "extended", metadata={"rule": "big"}),
         Decimal(100), "extended: rule big"),
        (Evaluation("k", "#fff", Reason.TARGETING_MATCH, "white",
                    metadata={"rule": "staff", "segment": "acme-staff"}),
         Decimal(100), "white: rule staff (segment acme-staff)"),
        (Evaluation("k", "#000", Reason.SPLIT, "black"), Decimal(50),
         "50 % rollout: you are in, served black"),
        (Evaluation("k", "#000", Reason.DISABLED, "black"), Decimal(50),
         "black: switched off for everyone"),
    ],
    ids=["node_on_a_known_path", "node_off_the_known_paths", "error", "rollout_unknown",
         "rule", "rule_with_segment", "typed_split", "typed_disabled"],
)  # fmt: skip
def test_reasons_in_words(evaluation: Evaluation, rollout: Decimal | None, words: str) -> None:
    assert explain(evaluation, rollout, PATHS) == words


@pytest.mark.parametrize(
    ("value", "text"), [("50.00", "50"), ("12.50", "12.5"), ("0.01", "0.01"), ("100", "100")]
)
def test_percentages_read_as_written(value: str, text: str) -> None:
    assert percent(Decimal(value)) == text
