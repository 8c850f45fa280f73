"""``task.type: text_classification``: single texts or pairs, single- or multi-label."""
