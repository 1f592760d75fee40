"""``alphaloop sentiment``: score headlines and posts."""

from __future__ import annotations

from pathlib import Path

import click

from alphaloop.cli.output import emit_json, table


@click.command("sentiment")
@click.argument("text", required=False)
@click.option("--file", "csv_path", type=click.Path(path_type=Path),
              help="CSV with a `text` column (optional `time` and `instrument`): one result per row, in order.")
@click.option("--json", "as_json", is_flag=True)
def sentiment(text: str | None, csv_path: Path | None, as_json: bool) -> None:
    """Score market text to [-1, 1] with a label and a confidence (VADER plus a finance lexicon).

    \b
    Examples:
      alphaloop sentiment "Acme beats expectations and raises full-year guidance"
      alphaloop sentiment --file news.csv --json
    """
    from alphaloop.core.errors import DataError
    from alphaloop.ml.sentiment import SentimentEngine

    if (text is None) == (csv_path is None):
        raise click.UsageError("give either TEXT or --file")
    engine = SentimentEngine()
    if text is not None:
        rows = [{"text": text}]
    else:
        import pandas as pd

        try:
            frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False, skip_blank_lines=False)
        except (OSError, pd.errors.ParserError, UnicodeDecodeError) as e:
            raise DataError(f"cannot read CSV: {e}", source=str(csv_path)) from e
        if "text" not in frame.columns:
            raise DataError(f"no `text` column (columns: {', '.join(frame.columns) or 'none'})",
                            source=str(csv_path), field="text")
        blank = frame.index[frame["text"].str.strip() == ""]
        if len(blank):
            raise DataError("empty text", source=str(csv_path), line=int(blank[0]) + 2, field="text")
        rows = frame.to_dict("records")
    results = engine.score_many([r["text"] for r in rows])
    out = []
    for r, s in zip(rows, results):
        item = {k: r[k] for k in ("time", "instrument") if r.get(k)}
        out.append({**item, "text": r["text"], "label": s.label, "score": s.score, "confidence": s.confidence})
    if as_json:
        emit_json(out[0] if text is not None else {"results": out})
        return
    click.echo(table([(o["label"], o["score"], o["confidence"], o["text"][:80]) for o in out],
                     ("label", "score", "confidence", "text")))


COMMANDS = [sentiment]
