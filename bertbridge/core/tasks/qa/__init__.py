"""``task.type: question_answering``: extractive QA on SQuAD v1.1/v2.0 JSON (windows, n-best, null answer, official EM/F1)."""
