"""A CheXpert-style rule labeler for the 14 observations, built in stages a notebook can run one at a time.

Taught in notebook 01 (data preparation). The stages:

1. **Mentions** — :func:`find_mentions` splits the text into sentences and finds the phrases of each
   observation (``cxrkit/labeler_phrases.yaml``); an *unmention* phrase cancels an overlapping mention
   of the same observation ("pericardial effusion" is not a pleural effusion). *Neutral* phrases name
   the anatomy ("heart size", "cardiac silhouette"): they count only when an asserting word
   ("enlarged") or a cue is in scope. Stability is not uncertainty: "stable heart size" says the size
   did not change, so it is blank; "stable cardiomegaly" is positive. "Upper limits of normal" (and
   "top normal", "high normal") states a normal size: negative; "borderline" stays uncertain.
2. **Classification** — :func:`classify_mention` looks for cues around the mention, in tiers, and the
   first tier with a cue in scope decides: uncertainty that contains a negation word ("cannot
   exclude", "no new") → -1; negation ("no", "without", "resolved", "normal" …) → 0; uncertainty
   ("possible", "may represent", "versus" …) → -1; otherwise a mention is positive (1).
   A cue's *scope* is a window of counted words before or after the mention (list words, joiners,
   punctuation and other mentions are not counted) that stops at the sentence end, at a clause break
   ("but", "however", ";", "with" …), and at a joiner ("and", ",", "/") unless the joiner only links
   items of a list ("no consolidation, effusion or pneumothorax"). An item of a list that a
   coordinator ("or", "and", "/") closes later may carry a few modifiers ("no lobar consolidation,
   large pleural effusion or pneumothorax") but no clause word ("is", "there", "the" …); "or"/"nor"
   always continue a list before the mention ("no pneumothorax or large effusion"). A short-range
   ("local") cue such as "normal" in "normal heart size" never reaches across a joiner.
3. **Aggregation** — :func:`label_report`: per observation positive > uncertain > negative, NaN when
   unmentioned; a positive or uncertain "heart failure"/"CHF" adds an uncertain Cardiomegaly; No
   Finding is 1 when no observation other than Support Devices is positive or uncertain, else NaN.
   An empty text gets NaN everywhere.
"""
from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
import yaml
from tqdm.auto import tqdm

from cxrkit.labels import CHEXPERT_LABELS, NEGATIVE, POSITIVE, UNCERTAIN
from cxrkit.lazy import lazy_import

sklearn_metrics = lazy_import("sklearn.metrics")  # seconds to import: only the agreement table needs it

__all__ = [
    "Mention", "Cue", "Labeler", "default_labeler", "find_mentions", "classify_mention", "label_report",
    "label_reports", "agreement_table", "split_sentences", "PHRASES_FILE", "TIERS",
]

PHRASES_FILE = "labeler_phrases.yaml"
NAN = float("nan")

#: Cue tiers in the order they are checked, with the value each one gives.
TIERS: tuple[tuple[str, float], ...] = (
    ("uncertain_before_negation", UNCERTAIN),
    ("negation", NEGATIVE),
    ("uncertainty", UNCERTAIN),
)

_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\n[ \t]*\n\s*")
_TOKEN = re.compile(r"_+|[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9_]")


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Return the (start, end) character spans of the sentences of ``text`` (split after . ! ? and at blank lines) — notebook 01."""
    spans, start = [], 0
    for brk in _SENTENCE_BREAK.finditer(text):
        if text[start:brk.start()].strip():
            spans.append((start, brk.start()))
        start = brk.end()
    if text[start:].strip():
        spans.append((start, len(text.rstrip())))
    return spans


def _tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


# ------------------------------------------------------------------------------------------ phrases

def _phrase_pattern(phrase: str, plural: bool) -> str:
    """A mention phrase → regex: whole words, spaces ~ spaces/hyphens, optional hyphen in a word, optional plural."""
    if phrase.startswith("re:"):
        return f"(?:{phrase[3:]})"
    words = phrase.lower().split()
    parts = [r"[\s\-]?".join(re.escape(piece) for piece in word.split("-")) for word in words]
    pattern = r"[\s\-]+".join(parts)
    if plural and words[-1][-1].isalpha():
        pattern += r"(?:e?s)?"
    return pattern


def _compile_phrases(phrases: Iterable[str], plural: bool, where: str) -> re.Pattern | None:
    phrases = list(phrases)
    for phrase in phrases:
        if not isinstance(phrase, str) or not phrase.strip():
            raise ValueError(f"labeler phrases, {where}: {phrase!r} is not a phrase (quote it in the YAML: a bare no is false)")
    if not phrases:
        return None
    ordered = sorted(phrases, key=lambda p: (-len(p), p))  # longest first: "pleural effusion" before "effusion"
    body = "|".join(_phrase_pattern(p, plural) for p in ordered)
    try:
        return re.compile(rf"(?<![a-z0-9])(?:{body})(?![a-z0-9])")
    except re.error as err:
        raise ValueError(f"labeler phrases, {where}: bad regular expression ({err})") from err


@dataclass(frozen=True)
class Cue:
    """One cue phrase: its tier, whether it sits before (pre) or after (post) the mention, and its window in counted words."""

    phrase: str
    tier: str
    direction: str
    window: int
    regex: re.Pattern = field(repr=False, compare=False)
    literal: str | None = field(default=None, repr=False, compare=False)


def _make_cues(entries: Iterable[Any], tier: str, direction: str, default_window: int) -> list[Cue]:
    cues = []
    for entry in entries or []:
        if isinstance(entry, Mapping):
            if len(entry) != 1:
                raise ValueError(f"labeler cues, {tier}/{direction}: {entry!r} must be {{phrase: window}}")
            (phrase, window), = entry.items()
        else:
            phrase, window = entry, default_window
        if not isinstance(phrase, str) or not phrase.strip() or not isinstance(window, int):
            raise ValueError(f"labeler cues, {tier}/{direction}: bad entry {entry!r} (quote phrases; windows are integers)")
        if phrase.startswith("re:"):
            body, literal = phrase[3:], None
        else:
            literal = " ".join(_tokenize(phrase))
            body = re.escape(literal)
        try:
            regex = re.compile(rf"(?<!\S)(?:{body})(?!\S)")
        except re.error as err:
            raise ValueError(f"labeler cues, {tier}/{direction}: bad regular expression {phrase!r} ({err})") from err
        cues.append(Cue(phrase, tier, direction, int(window), regex, literal))
    return cues


_OBSERVATION_KEYS = frozenset({"mentions", "neutral", "unmentions", "assertions", "implies"})


@dataclass
class _Observation:
    name: str
    mentions: re.Pattern | None
    neutral: re.Pattern | None
    unmentions: re.Pattern | None
    assertions: list[Cue]
    implies: dict[str, float]


# ------------------------------------------------------------------------------------------ mentions

@dataclass
class _CueMatch:
    cue: Cue
    start: int  # token indices, end exclusive
    end: int
    text: str   # the matched words


class _Sentence:
    """Tokens of one sentence with the per-token roles the scope rules need (shared by its mentions)."""

    def __init__(self, labeler: "Labeler", text: str, offset: int, mention_spans: list[tuple[int, int]]):
        self.labeler, self.text, self.offset = labeler, text, offset
        lowered = text.lower()
        found = list(_TOKEN.finditer(lowered))
        self.tokens = [m.group() for m in found]
        self.char_starts = [m.start() for m in found]
        self.char_ends = [m.end() for m in found]
        self.joined = " ".join(self.tokens)
        self.joined_starts, pos = [], 0
        for tok in self.tokens:
            self.joined_starts.append(pos)
            pos += len(tok) + 1
        n = len(self.tokens)
        self.in_mention = [False] * n
        for start, end in mention_spans:
            lo, hi = self.token_range(start, end)
            for i in range(lo, hi):
                self.in_mention[i] = True
        self.matches, pseudo = labeler._match_generic_cues(self)
        covered = [False] * n
        for match in self.matches + pseudo:
            for i in range(match.start, match.end):
                covered[i] = True
        self.boundary = [not covered[i] and tok in labeler.clause_breaks for i, tok in enumerate(self.tokens)]
        self.joiner = [not covered[i] and tok in labeler.joiners for i, tok in enumerate(self.tokens)]
        self.open_joiner = [j and tok in labeler.open_joiners for j, tok in zip(self.joiner, self.tokens)]
        self.punct = [not tok[0].isalnum() and tok[0] != "_" for tok in self.tokens]
        self.list_like = [self.in_mention[i] or tok in labeler.list_words or self.punct[i]
                          for i, tok in enumerate(self.tokens)]
        counted = [not (self.list_like[i] or self.joiner[i] or self.boundary[i]) for i in range(n)]
        # A modifier may sit in a list item ("large" in "no consolidation, large effusion or pneumothorax"):
        # a counted word that is neither part of a cue nor a clause word ("is", "there", "seen" …).
        self.modifier = [counted[i] and not covered[i] and tok not in labeler.clause_words
                         for i, tok in enumerate(self.tokens)]
        # closer[i]: a coordinating joiner ("or", "and", "/" …, not a comma) at or after token i, before a clause break.
        self.closer, ahead = [False] * n, False
        for i in range(n - 1, -1, -1):
            ahead = False if self.boundary[i] else ahead or (self.joiner[i] and self.tokens[i] in labeler.coordinators)
            self.closer[i] = ahead
        self.prefix, self.joiner_prefix = [0], [0]
        for flag, joiner in zip(counted, self.joiner):
            self.prefix.append(self.prefix[-1] + flag)
            self.joiner_prefix.append(self.joiner_prefix[-1] + joiner)

    def token_range(self, start: int, end: int) -> tuple[int, int]:
        """Token indices [lo, hi) overlapping the character span [start, end) of this sentence."""
        lo = bisect.bisect_right(self.char_ends, start)
        hi = bisect.bisect_left(self.char_starts, end)
        return lo, max(lo, hi)

    def attributive(self, i: int) -> bool:
        """Whether token ``i`` (just after a cue) begins a mention or list word, so the cue qualifies what follows."""
        return i < len(self.tokens) and self.list_like[i] and not self.punct[i]

    def _item_ahead(self, i: int) -> list[int] | None:
        """The modifier tokens of the list item from token ``i`` up to the next mention, or None when the words there are no list item."""
        modifiers: list[int] = []
        while i < len(self.tokens) and not (self.boundary[i] or self.joiner[i]):
            if self.in_mention[i]:
                return modifiers
            if not self.list_like[i]:
                modifiers.append(i)
                if not self.modifier[i] or len(modifiers) > self.labeler.max_modifiers:
                    return None
            i += 1
        return None

    def scope(self, lo_tok: int, hi_tok: int) -> tuple[int, int, frozenset[int]]:
        """For a mention at [lo_tok, hi_tok): the first token a pre-cue may start at, the token a post-cue must end by, and the modifier tokens of the list items crossed (not counted in a cue's distance).

        Walking out from the mention, a joiner ("," "and" "/") is crossed when the list item between
        it and the mention side is made of list words and mentions only, or — inside a list that a
        coordinator ("or", "and", "/") closes later in the clause — of a mention and at most
        ``scope.modifiers`` modifier words; "or"/"nor" are always crossed before the mention.
        """
        limit, free = self.labeler.max_modifiers, set()
        first, listy, pending, blocked, i = lo_tok, True, [], False, lo_tok - 1
        mentioned = True  # the item being walked holds a mention (at first: this one)
        while i >= 0:
            if self.boundary[i]:
                break
            if self.joiner[i]:
                item = listy or (mentioned and not blocked and len(pending) <= limit and self.closer[i])
                if not item and not self.open_joiner[i]:
                    break
                if item:
                    free.update(pending)
                listy, pending, blocked, mentioned = True, [], False, False
            elif not self.list_like[i]:
                listy, blocked = False, blocked or not self.modifier[i]
                pending.append(i)
            elif self.in_mention[i]:
                mentioned = True
            first, i = i, i - 1
        last, listy, i, n = hi_tok, True, hi_tok, len(self.tokens)
        while i < n:
            if self.boundary[i]:
                break
            if self.joiner[i]:
                nxt = i + 1
                while nxt < n and (self.joiner[nxt] or self.punct[nxt]) and not self.boundary[nxt]:
                    nxt += 1
                bare = nxt < n and (self.in_mention[nxt] or self.tokens[nxt] in self.labeler.list_words)
                ahead = None if bare or not self.closer[i] else self._item_ahead(nxt)
                if not listy or not (bare or ahead is not None):
                    break
                free.update(ahead or ())
                listy = True
            elif not self.list_like[i] and i not in free:
                listy = False
            i += 1
            last = i
        return first, last, frozenset(free)


@dataclass
class Mention:
    """One mention of an observation: where it is, the sentence around it, and (after classify_mention) its value and deciding cue."""

    observation: str               #: a CheXpert observation, or an implied one ("Heart Failure")
    span: tuple[int, int]          #: character offsets in the labelled text
    text: str                      #: the matched words as written
    sentence: str                  #: the sentence the mention sits in
    neutral: bool = False          #: an anatomy phrase ("heart size") rather than a finding
    value: float | None = None     #: set by classify_mention: 1, 0, -1, or NaN (unasserted neutral mention)
    cue: str | None = None         #: the cue words that decided, e.g. "no evidence of"; None when no cue did
    rule: str | None = None        #: which rule decided, e.g. "negation (pre)"
    _sentence: _Sentence | None = field(default=None, repr=False, compare=False)


# ------------------------------------------------------------------------------------------ labeler

class Labeler:
    """The rule labeler, configured by a phrase file; module functions use the packaged default (notebook 01)."""

    def __init__(self, phrases: Mapping[str, Any]):
        scope = phrases.get("scope", {})
        pre, post = int(scope.get("pre", 6)), int(scope.get("post", 5))
        self.clause_breaks = frozenset(" ".join(_tokenize(w)) for w in phrases.get("clause_breaks", []))
        self.joiners = frozenset(" ".join(_tokenize(w)) for w in phrases.get("joiners", []))
        self.open_joiners = frozenset(" ".join(_tokenize(w)) for w in phrases.get("open_joiners", []))
        self.joiners |= self.open_joiners
        self.coordinators = frozenset(" ".join(_tokenize(w)) for w in phrases.get("coordinators", [])) & self.joiners
        self.clause_words = frozenset(" ".join(_tokenize(w)) for w in phrases.get("clause_words", []))
        self.max_modifiers = int(scope.get("modifiers", 0))
        self.local_window = int(scope.get("local", 0))
        self.list_words = frozenset(phrases.get("list_words", []))
        cues = phrases.get("cues", {})
        tier_names = [name for name, _ in TIERS]
        unknown = set(cues) - set(tier_names) - {"pseudo_negation"}
        if unknown:
            raise ValueError(f"labeler cues: unknown tier(s) {sorted(unknown)}; expected {tier_names} and pseudo_negation")
        self.cues: list[Cue] = []
        for tier in tier_names:
            spec = cues.get(tier, {}) or {}
            self.cues += _make_cues(spec.get("pre"), tier, "pre", pre) + _make_cues(spec.get("post"), tier, "post", post)
        self.pseudo = _make_cues(cues.get("pseudo_negation"), "pseudo_negation", "any", 0)
        self.observations: list[_Observation] = []
        for name, spec in (phrases.get("observations") or {}).items():
            if name not in CHEXPERT_LABELS or name == "No Finding":
                raise ValueError(f"labeler phrases: {name!r} is not one of the mentionable CheXpert observations")
            self.observations.append(self._observation(name, spec, pre, post, {}))
        for name, spec in (phrases.get("implied") or {}).items():
            implies = {str(k): float(v) for k, v in (spec.get("implies") or {}).items()}
            bad = [k for k in implies if k not in CHEXPERT_LABELS]
            if bad or not implies:
                raise ValueError(f"labeler phrases: implied {name!r} must imply CheXpert observations, got {bad or 'nothing'}")
            self.observations.append(self._observation(name, spec, pre, post, implies))

    @staticmethod
    def _observation(name: str, spec: Mapping[str, Any], pre: int, post: int, implies: dict[str, float]) -> _Observation:
        spec = spec or {}
        unknown = sorted(set(spec) - _OBSERVATION_KEYS)
        if unknown:
            raise ValueError(f"labeler phrases, {name}: unknown key(s) {unknown}; expected {sorted(_OBSERVATION_KEYS)} "
                             "(stability words are not cues: an anatomy phrase with only one is blank)")
        assertions = spec.get("assertions") or {}
        return _Observation(
            name=name,
            mentions=_compile_phrases(spec.get("mentions", []), True, f"{name}/mentions"),
            neutral=_compile_phrases(spec.get("neutral", []), True, f"{name}/neutral"),
            unmentions=_compile_phrases(spec.get("unmentions", []), False, f"{name}/unmentions"),
            assertions=_make_cues(assertions.get("pre"), "assertion", "pre", pre)
            + _make_cues(assertions.get("post"), "assertion", "post", post),
            implies=implies,
        )

    @classmethod
    def from_yaml(cls, path: str | Path | None = None) -> "Labeler":
        """Build a labeler from a phrase YAML file (default: the packaged ``labeler_phrases.yaml``)."""
        if path is None:
            text = resources.files("cxrkit").joinpath(PHRASES_FILE).read_text(encoding="utf-8")
            where = PHRASES_FILE
        else:
            text, where = Path(path).read_text(encoding="utf-8"), str(path)
        data = yaml.safe_load(text)
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: expected a mapping of scope/cues/observations")
        return cls(data)

    # -- stage 1 -------------------------------------------------------------------------------
    def _match_cues(self, sentence: _Sentence, cues: Iterable[Cue]) -> list[_CueMatch]:
        joined, starts = sentence.joined, sentence.joined_starts
        found: list[_CueMatch] = []
        for cue in cues:
            if cue.literal is not None and cue.literal not in joined:
                continue
            for m in cue.regex.finditer(joined):
                lo = bisect.bisect_left(starts, m.start())
                hi = bisect.bisect_left(starts, m.end())
                found.append(_CueMatch(cue, lo, hi, sentence.joined[m.start():m.end()]))
        return found

    def _match_generic_cues(self, sentence: _Sentence) -> tuple[list[_CueMatch], list[_CueMatch]]:
        """The tiered cues of a sentence, minus negations hidden inside a pseudo-negation ("no change"); and the pseudo-negations."""
        found = self._match_cues(sentence, self.cues)
        pseudo = self._match_cues(sentence, self.pseudo)
        if pseudo:
            found = [f for f in found if f.cue.tier != "negation"
                     or not any(p.start < f.end and f.start < p.end for p in pseudo)]
        return found, pseudo

    def find_mentions(self, text: str) -> list[Mention]:
        """Stage 1: every mention of every observation, in text order, unmentions removed (notebook 01)."""
        lowered = text.lower()
        raw: list[tuple[int, int, int, bool]] = []  # start, end, observation index, neutral
        for index, obs in enumerate(self.observations):
            cancel = [m.span() for m in obs.unmentions.finditer(lowered)] if obs.unmentions else []
            taken: list[tuple[int, int]] = []
            for pattern, neutral in ((obs.mentions, False), (obs.neutral, True)):
                if pattern is None:
                    continue
                for m in pattern.finditer(lowered):
                    s, e = m.span()
                    if any(a < e and s < b for a, b in cancel) or any(a < e and s < b for a, b in taken):
                        continue
                    taken.append((s, e))
                    raw.append((s, e, index, neutral))
        if not raw:
            return []
        raw.sort()
        sentences = split_sentences(text)
        sentence_starts = [s for s, _ in sentences]
        grouped: dict[int, list[tuple[int, int, int, bool]]] = {}
        for item in raw:
            k = max(0, bisect.bisect_right(sentence_starts, item[0]) - 1)
            grouped.setdefault(k, []).append(item)
        mentions: list[Mention] = []
        for k, items in grouped.items():
            s_start, s_end = sentences[k]
            context = _Sentence(self, text[s_start:s_end], s_start, [(s - s_start, e - s_start) for s, e, _, _ in items])
            for s, e, index, neutral in items:
                mentions.append(Mention(self.observations[index].name, (s, e), text[s:e], context.text,
                                        neutral=neutral, _sentence=context))
        return mentions

    # -- stage 2 -------------------------------------------------------------------------------
    def _closest(self, context: _Sentence, matches: Iterable[_CueMatch], lo: int, hi: int,
                 scope: tuple[int, int, frozenset[int]]) -> _CueMatch | None:
        first, last, free = scope
        best, best_key = None, None
        for match in matches:
            if match.cue.direction == "pre":
                if match.end > lo or match.start < first:
                    continue
                words = context.prefix[lo] - context.prefix[match.end]
                if (match.cue.window <= self.local_window and context.joiner_prefix[lo] > context.joiner_prefix[match.end]
                        and not (words == 0 and context.attributive(match.end))):
                    continue  # a local cue reaches across a list only as the adjective of bare items ("normal heart size and contours")
                distance = words - sum(match.end <= t < lo for t in free)
            else:
                if match.start < hi or match.end > last:
                    continue
                distance = context.prefix[match.start] - context.prefix[hi] - sum(hi <= t < match.start for t in free)
            if distance > match.cue.window:
                continue
            key = (distance, -(match.end - match.start))
            if best_key is None or key < best_key:
                best, best_key = match, key
        return best

    def classify_mention(self, mention: Mention) -> float:
        """Stage 2: 1 / 0 / -1 for one mention (NaN for a neutral mention nothing asserts); records ``cue`` and ``rule`` on it (notebook 01)."""
        context = mention._sentence
        if context is None:
            raise ValueError("classify_mention needs a Mention made by find_mentions (it carries its sentence's tokens)")
        lo, hi = context.token_range(mention.span[0] - context.offset, mention.span[1] - context.offset)
        scope = context.scope(lo, hi)
        value, cue, rule = POSITIVE, None, "mention without a cue"
        for tier, tier_value in TIERS:
            match = self._closest(context, (m for m in context.matches if m.cue.tier == tier), lo, hi, scope)
            if match is not None:
                value, cue, rule = tier_value, match.text, f"{tier} ({match.cue.direction})"
                break
        else:
            if mention.neutral:
                obs = next(o for o in self.observations if o.name == mention.observation)
                assertion = self._closest(context, self._match_cues(context, obs.assertions), lo, hi, scope)
                if assertion is not None:
                    value, cue, rule = POSITIVE, assertion.text, f"assertion ({assertion.cue.direction})"
                else:
                    value, cue, rule = NAN, None, "neutral mention without an asserting word"
        mention.value, mention.cue, mention.rule = value, cue, rule
        return value

    # -- stage 3 -------------------------------------------------------------------------------
    def label_report(self, text: str) -> dict[str, float]:
        """Stage 3: the 14 labels of one report text (1 / 0 / -1 / NaN), aggregated positive > uncertain > negative (notebook 01)."""
        labels = {name: NAN for name in CHEXPERT_LABELS}
        if not isinstance(text, str) or not text.strip():
            return labels
        found: dict[str, list[float]] = {}
        implies = {o.name: o.implies for o in self.observations if o.implies}
        for mention in self.find_mentions(text):
            value = self.classify_mention(mention)
            if math.isnan(value):
                continue
            if mention.observation in implies:
                if value in (POSITIVE, UNCERTAIN):
                    for target, implied in implies[mention.observation].items():
                        found.setdefault(target, []).append(implied)
                continue
            found.setdefault(mention.observation, []).append(value)
        for name, values in found.items():
            labels[name] = POSITIVE if POSITIVE in values else UNCERTAIN if UNCERTAIN in values else NEGATIVE
        findings = [n for n in CHEXPERT_LABELS if n not in ("No Finding", "Support Devices")]
        if not any(labels[n] in (POSITIVE, UNCERTAIN) for n in findings):
            labels["No Finding"] = POSITIVE
        return labels

    def label_reports(self, texts: Iterable[str | None], progress: bool = True) -> pd.DataFrame:
        """Label many report texts → a DataFrame with the 14 CheXpert columns; a pandas Series keeps its index (notebook 01)."""
        index = texts.index if isinstance(texts, pd.Series) else None
        items = list(texts)
        rows = [self.label_report(t) if isinstance(t, str) else {n: NAN for n in CHEXPERT_LABELS}
                for t in tqdm(items, desc="labelling reports", disable=not progress, leave=False, delay=2)]
        frame = pd.DataFrame(rows, columns=list(CHEXPERT_LABELS), dtype="float64")
        if index is not None:
            frame.index = index
        return frame


@lru_cache(maxsize=1)
def default_labeler() -> Labeler:
    """Return the labeler built from the packaged phrase file (cached) — notebook 01."""
    return Labeler.from_yaml()


def find_mentions(text: str) -> list[Mention]:
    """Stage 1 with the packaged phrases: mentions of every observation in ``text`` (notebook 01)."""
    return default_labeler().find_mentions(text)


def classify_mention(mention: Mention) -> float:
    """Stage 2 with the packaged cues: 1 / 0 / -1 (NaN for an unasserted neutral mention), the deciding cue stored on the mention (notebook 01)."""
    return default_labeler().classify_mention(mention)


def label_report(text: str) -> dict[str, float]:
    """Label one report text with the packaged labeler → {observation: 1 / 0 / -1 / NaN} (notebook 01)."""
    return default_labeler().label_report(text)


def label_reports(texts: Iterable[str | None], progress: bool = True) -> pd.DataFrame:
    """Label many report texts with the packaged labeler → DataFrame of the 14 CheXpert columns (notebook 01)."""
    return default_labeler().label_reports(texts, progress=progress)


def agreement_table(predicted: pd.DataFrame, truth: pd.DataFrame, *, uncertain_as_positive: bool = False) -> pd.DataFrame:
    """Per observation: precision, recall, F1 and support of predicted vs true labels, rows matched by index (notebook 01).

    Convention: a label counts as positive when it is 1; uncertain (-1), negative (0) and unmentioned
    (NaN) count as not positive. With ``uncertain_as_positive=True`` a -1 counts as positive on both
    sides (the "U-ones" reading). ``support`` is the number of true positives in ``truth``,
    ``predicted_positive`` the number of positives in ``predicted``; precision is NaN when nothing was
    predicted positive and recall is NaN when nothing is truly positive.
    """
    labels = [name for name in CHEXPERT_LABELS if name in predicted.columns and name in truth.columns]
    if not labels:
        raise ValueError("predicted and truth share none of the 14 CheXpert label columns")
    for name, frame in (("predicted", predicted), ("truth", truth)):
        if frame.index.has_duplicates:
            raise ValueError(f"{name} has duplicate index values; rows are matched by index")
    common = predicted.index.intersection(truth.index, sort=False)
    if len(common) == 0:
        raise ValueError("predicted and truth share no index values; align them (e.g. by study_id) first")
    positive = [POSITIVE, UNCERTAIN] if uncertain_as_positive else [POSITIVE]
    rows = []
    for name in labels:
        y_pred = np.isin(pd.to_numeric(predicted.loc[common, name], errors="raise").to_numpy(float), positive)
        y_true = np.isin(pd.to_numeric(truth.loc[common, name], errors="raise").to_numpy(float), positive)
        precision, recall, f1, _ = sklearn_metrics.precision_recall_fscore_support(
            y_true, y_pred, average="binary", pos_label=True, zero_division=np.nan)
        rows.append({"observation": name, "precision": float(precision), "recall": float(recall), "f1": float(f1),
                     "support": int(y_true.sum()), "predicted_positive": int(y_pred.sum()), "n": int(len(common))})
    return pd.DataFrame(rows).set_index("observation")
