"""What thumbs tells people who do not read its tables: the analyst report (`thumbs
report`: page renders the HTML from the published copy, charts draws inline SVG, tables
keeps every number readable back) and the model card in every checkpoint (model_card)."""
