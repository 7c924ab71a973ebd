"""Report text for models: tokenization, a train-only vocabulary, label-term redaction, text sources, attribution.

Taught in notebook 03 (text CNN). Pretrained (MiniLM) loading lives in :mod:`cxrkit.text.pretrained`,
imported on demand because it pulls in ``transformers``.
"""
from cxrkit.text.attribution import gradient_x_embedding, token_spans, tokens_to_words
from cxrkit.text.redact import LABEL_TERMS, label_terms, redact_label_terms
from cxrkit.text.sources import DEFAULT_TEXT_SOURCE, REDACTED_SOURCES, TEXT_SOURCES, report_text, text_for_source
from cxrkit.text.tokenize import (
    DEID_TOKEN,
    NEGATION_WORDS,
    REDACTED_TOKEN,
    STOP_WORDS,
    kept_word_spans,
    tokenize,
    word_spans,
)
from cxrkit.text.vocab import (
    PAD_ID,
    SPECIAL_TOKENS,
    UNK_ID,
    Vocabulary,
    choose_max_len,
    fit_vocabulary,
)

__all__ = [
    "DEFAULT_TEXT_SOURCE", "DEID_TOKEN", "LABEL_TERMS", "NEGATION_WORDS", "PAD_ID", "REDACTED_SOURCES",
    "REDACTED_TOKEN", "SPECIAL_TOKENS", "STOP_WORDS", "TEXT_SOURCES", "UNK_ID", "Vocabulary",
    "choose_max_len", "fit_vocabulary", "gradient_x_embedding", "kept_word_spans", "label_terms",
    "redact_label_terms", "report_text", "text_for_source", "token_spans", "tokenize", "tokens_to_words",
    "word_spans",
]
