"""The home page's words for a flag's reason, where the page's data cannot reach them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from api.flags.evaluate import Evaluation, Reason
from api.pages import explain, percent

PATHS = {1: "Acme Retail", 10: "Acme Retail / Paris"}


@pytest.mark.parametrize(
    ("evaluation", "rollout", "words"),
    [
        (Evaluation("k", True, Reason.TARGETING_MATCH, override_node_id=10), Decimal(0),
         "on: override for Acme Retail / Paris"),
        (Evaluation("k", True, Reason.TARGETING_MATCH, override_node_id=99), Decimal(0),
         "on: override for your organisation"),
        (Evaluation("k", False, Reason.ERROR, "FLAG_NOT_FOUND"), None,
         "off: could not be evaluated (FLAG_NOT_FOUND)"),
        (Evaluation("k", False, Reason.SPLIT), None, "off: split"),
    ],
    ids=["node_on_a_known_path", "node_off_the_known_paths", "error", "rollout_unknown"],
)  # fmt: skip
def test_reasons_in_words(evaluation: Evaluation, rollout: Decimal | None, words: str) -> None:
    assert explain(evaluation, rollout, PATHS) == words


@pytest.mark.parametrize(
    ("value", "text"), [("50.00", "50"), ("12.50", "12.5"), ("0.01", "0.01"), ("100", "100")]
)
def test_percentages_read_as_written(value: str, text: str) -> None:
    assert percent(Decimal(value)) == text
