"""Strategy discovery: feedback, generation, out-of-sample evaluation, scoring and activation."""
