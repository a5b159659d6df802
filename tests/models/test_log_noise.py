"""Third-party noise stays out of the logs (issue #33): transformers' "Token indices sequence length is
longer than the specified maximum" (xlexp tokenizes whole texts on purpose and windows or truncates
them itself) no longer leaks once xlexp has loaded a tokenizer; other transformers warnings still do."""

from __future__ import annotations

import logging

import pytest

pytestmark = pytest.mark.unit


def _tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.WordLevel({"[UNK]": 0, "[PAD]": 1, "word": 2}, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]", pad_token="[PAD]", model_max_length=8)


def test_the_long_sequence_warning_is_silenced_and_others_are_not(caplog):
    from transformers.utils import logging as hf_logging

    from xlexp.models.encoders import quiet_transformers

    logger = logging.getLogger("transformers.tokenization_utils_base")
    saved, level = list(logger.filters), hf_logging.get_verbosity()
    # other tests (and Hydra's logging config) may have changed transformers' verbosity or handler: set both
    hf_logging.set_verbosity_warning()
    hf_logging.enable_default_handler()
    hf_logging.enable_propagation()
    disabled = logger.disabled
    logger.disabled = False  # a logging.config.dictConfig earlier in the process (Hydra's) disables existing loggers
    try:
        logger.filters = [f for f in logger.filters if type(f).__name__ != "_LongSequenceNoise"]
        caplog.set_level(
            logging.WARNING
        )  # records, not stderr: a handler made by an earlier test may hold a stale stream
        _tokenizer()("word " * 20)
        assert "Token indices sequence length" in caplog.text  # the noise, as it was
        caplog.clear()
        quiet_transformers()
        quiet_transformers()  # idempotent: one filter
        assert sum(type(f).__name__ == "_LongSequenceNoise" for f in logger.filters) == 1
        _tokenizer()("word " * 20)
        logger.warning("another warning")
        err = caplog.text
        assert "Token indices sequence length" not in err and "another warning" in err
    finally:
        logger.filters = saved
        logger.disabled = disabled
        hf_logging.set_verbosity(level)
