"""Story keys: one key for the copies of one headline, so syndication counts as one story.

The same wire story reaches the topic many times: from each outlet that carries it, with an
agency prefix ("UPDATE 1-", "BRIEF-", "EXCLUSIVE-"), a source suffix ("- Reuters", "| CNBC"),
other case or punctuation. Its copies share a key: the sha1 of the headline lower-cased, without
those tags, reduced to its letters and digits. Rewordings are different stories by this rule
(detection reads keys, so a fuzzier rule can replace this one without touching it).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

_PREFIX = re.compile(
    r"^\s*((update|corrected|refile|rpt|brief|exclusive|breaking|factbox|analysis|instant view|wrapup|"
    r"update \d+|corrected-update \d+)\s*[-:]\s*)+",
    re.IGNORECASE,
)
_SUFFIX = re.compile(r"\s*([-|:–—]\s*(reuters|bloomberg|cnbc|ap|afp|dow jones|wsj|ft|source|sources|report|as it happened)\s*)+$",
                     re.IGNORECASE)
_NOT_WORD = re.compile(r"[^0-9a-z]+")


def story_key(headline: str) -> str:
    """The key of the story a headline tells; empty headlines get the key of the empty story."""
    text = unicodedata.normalize("NFKD", headline).casefold()
    text = _SUFFIX.sub("", _PREFIX.sub("", text))
    words = _NOT_WORD.sub(" ", text).split()
    return hashlib.sha1(" ".join(words).encode("ascii", "ignore")).hexdigest()[:20]
