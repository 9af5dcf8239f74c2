"""Text search and offset pages of the job list (projections.job_search, list_jobs)."""

from pathlib import Path

import pytest
from sqlalchemy import text

from events.types import JobCreated, JobDeleted, JobUpdated
from projections.job_search import query_words, terms_of, words_of
from projections.queries import JobFilters, list_jobs
from tests.unit.domain_support import spec
from tests.unit.test_projections import apply, engine_at, record


def test_words_are_runs_of_letters_and_digits_lowercased() -> None:
    assert words_of("Nightly report_export-v2 (EU)") == ["nightly", "report", "export",
                                                         "v2", "eu"]
    assert words_of("Größe Straße") == ["grösse", "strasse"]  # casefold, not lower
    assert words_of("--- !!") == []


def test_a_jobs_terms_are_its_name_and_slug_words_once_each() -> None:
    assert terms_of("Nightly Report", "nightly-report-eu") == ["nightly", "report", "eu"]
    assert len(terms_of(" ".join(f"w{i}" for i in range(200)), "s")) == 64
    assert query_words("rep  Rep rep") == ["rep"]


NAMED = [("j1", "Nightly report", "nightly-report"),
         ("j2", "Report archive", "archive"),
         ("j3", "Billing export", "billing-eu"),
         ("j4", "Reporter", "rep-x"),
         ("j5", "Nightly backup", "nightly-backup")]


@pytest.mark.usefixtures("store")  # on SQLite and on PostgreSQL
async def test_every_word_must_begin_a_word_of_the_name_or_slug(tmp_path: Path) -> None:
    engine = await engine_at(tmp_path / "s.db")
    await apply(engine, [record(1, None, JobCreated(spec=spec(name=name, slug=slug)),
                                offset=i, job_id=job_id)
                         for i, (job_id, name, slug) in enumerate(NAMED)]
                + [record(1, None, JobCreated(spec=spec(name="Nightly report", slug="o")),
                          offset=9, job_id="other", project="q")])

    async def found(q: str) -> list[str]:
        jobs = await list_jobs(engine, "p", JobFilters(words=query_words(q)), None, 100)
        return sorted(job.id for job in jobs)

    assert await found("report") == ["j1", "j2", "j4"]  # a word's start: "reporter" too
    assert await found("reporters") == []
    assert await found("rep x") == ["j4"]  # slug "rep-x"
    assert await found("NIGHTLY rep") == ["j1"]
    assert await found("eu") == ["j3"]  # a word of the slug only
    assert await found("port") == []  # words are matched from their start
    assert await found("nightly-backup") == ["j5"]

    # A rename replaces the words; a deleted job is not found.
    await apply(engine, [
        record(2, None, JobUpdated(spec=spec(name="Weekly report", slug="nightly-report"),
                                   version=2, version_id="jv2", changed_fields=["name"]),
               offset=10, job_id="j1"),
        record(2, None, JobDeleted(), offset=11, job_id="j2")])
    assert await found("weekly") == ["j1"]
    assert await found("report") == ["j1", "j4"]
    assert await found("nightly") == ["j1", "j5"]  # j1's slug still says nightly


@pytest.mark.usefixtures("store")
async def test_offset_pages_walk_the_list_in_order(tmp_path: Path) -> None:
    engine = await engine_at(tmp_path / "o.db")
    await apply(engine, [record(1, None, JobCreated(spec=spec(slug=f"s{i}")), offset=i,
                                job_id=f"j{i}") for i in range(7)])
    everything = [j.id for j in await list_jobs(engine, "p", JobFilters(), None, 100)]
    pages = [[j.id for j in await list_jobs(engine, "p", JobFilters(), None, 3, offset)]
             for offset in (0, 3, 6)]
    assert [j for page in pages for j in page] == everything and len(everything) == 7


async def test_a_search_reads_the_terms_index(tmp_path: Path) -> None:
    from sqlalchemy.dialects import sqlite

    from projections.queries import jobs_query

    engine = await engine_at(tmp_path / "e.db")
    query = jobs_query("p", JobFilters(words=["rep"]), None, 10, 0)
    sql = str(query.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))
    async with engine.connect() as conn:
        plan = " ".join(str(row[-1]) for row in await conn.execute(
            text(f"EXPLAIN QUERY PLAN {sql}")))
    assert "ix_job_terms_project_term" in plan, plan
    assert "SCAN job_terms" not in plan and "SCAN jobs" not in plan, plan
