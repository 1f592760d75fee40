"""``python -m alphaloop.ml.sentiment [file.csv ...]``: the accuracy table of plain VADER and ours."""

from alphaloop.ml.sentiment.evaluation import main

raise SystemExit(main())
