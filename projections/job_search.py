"""Words of a job's name and slug, for ``GET /v1/jobs?q=``.

A search matches a job when every word of the query begins a word of the job's name or
slug, case-insensitively ("nightly rep" finds "Nightly report export" and
``nightly-reports``). The projector keeps each job's words as rows of ``job_terms``
(project, term, job), and a search looks them up through an index by prefix. The list
walks the project's jobs newest first and stops when a page is full, so a search costs
at most the project's own jobs, each checked against the index (a substring search,
``LIKE '%x%'``, could check no index at all).
"""

import re

MAX_TERMS = 64  # words kept per job (a name is at most a few hundred characters)
TERM_CHARS = 64
MAX_QUERY_WORDS = 8

_WORD = re.compile(r"[^\W_]+")

# The highest code point: every text that begins with a prefix sorts below prefix + this.
PREFIX_END = "\U0010ffff"


def words_of(text: str) -> list[str]:
    """The lowercased words of ``text`` in order, each cut to TERM_CHARS."""
    return [w.casefold()[:TERM_CHARS] for w in _WORD.findall(text)]


def terms_of(name: str, slug: str) -> list[str]:
    """The distinct words a job is found by: its name's and its slug's."""
    return list(dict.fromkeys(words_of(name) + words_of(slug)))[:MAX_TERMS]


def query_words(q: str) -> list[str]:
    """The distinct words of a search, at most MAX_QUERY_WORDS (the caller checks)."""
    return list(dict.fromkeys(words_of(q)))
