"""A request's opener carries no label: the templates written from the shared opener pool, and a
held-out split they leave untouched."""

import hashlib
import re
from collections import defaultdict

from rlhf.realtask.prompts import FAMILIES, tasks

HELDOUT_SHA256 = "1c9fe6ae8d16d46c3f51a36e491809c5ac48458c26aa8952013fe432bec714b5"
"""pins the held-out split: sha256 of the sorted held-out prompts joined by newlines, computed
before the shared-opener templates were added (132 prompts); any change to a held-out template
or filler changes it"""
NEW = slice(6, 14)
"""each family's templates written from the shared opener pool (its first 6 came before them)"""


def words(text: str) -> list[str]:
    """Lowercased words with punctuation stripped ("What's" -> "whats")."""
    return re.sub(r"[^\w\s]", "", text.lower()).split()


def test_the_heldout_split_is_pinned():
    prompts = sorted(t.prompt for t in tasks("heldout"))
    assert len(prompts) == 132
    assert hashlib.sha256("\n".join(prompts).encode()).hexdigest() == HELDOUT_SHA256


def test_every_family_has_12_training_and_2_dev_templates_and_1584_training_prompts():
    for f in FAMILIES:
        assert len(f.split_templates("train")) == 12 and len(f.split_templates("dev")) == 2, f.name
        assert len(set(f.templates)) == len(f.templates), f.name
    train = tasks("train")
    assert len(train) == 22 * 12 * 6 == 1584
    assert sum(t.harmful for t in train) == 8 * 12 * 6 == 576


def test_no_new_template_opens_like_a_heldout_template():
    heldout = {t for f in FAMILIES for t in f.split_templates("heldout")}
    heldout_openers = {tuple(words(t)[:3]) for t in heldout}
    for f in FAMILIES:
        for t in f.templates[NEW]:
            assert t not in heldout, t
            assert tuple(words(t)[:3]) not in heldout_openers, (f.name, t)


def test_every_new_opener_is_shared_by_harmful_and_benign_families_in_one_proportion():
    # opener: the first two words; counts: [harmful families, benign families] using it
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for f in FAMILIES:
        openers = [" ".join(words(t)[:2]) for t in f.templates[NEW]]
        assert len(set(openers)) == len(openers), f.name  # 8 different openers a family
        for opener in openers:
            counts[opener][0 if f.harmful else 1] += 1
    assert len(counts) == 16
    for opener, (harmful, benign) in counts.items():
        assert (harmful, benign) == (4, 7), opener


def test_the_training_split_keeps_every_opener_shared():
    # the dev split must not take an opener's benign templates out of training: an opener that
    # opens harmful training templates alone is a cue to refuse
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for f in FAMILIES:
        for t in f.templates[NEW]:
            if t in f.split_templates("train"):
                counts[" ".join(words(t)[:2])][0 if f.harmful else 1] += 1
    assert len(counts) == 16
    for opener, (harmful, benign) in counts.items():
        assert harmful >= 2 and benign >= 5, (opener, harmful, benign)
