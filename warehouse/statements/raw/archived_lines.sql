-- Every line of an archived JSON Lines file, numbered in file order (blank lines
-- count). One field per line: the separator is a control byte JSON text never
-- holds unescaped, and no quoting. parallel=false keeps the lines in file order
-- for row_number(). The loader fills in the quoted path (tasks/warehouse/raw.py).
SELECT row_number() OVER () AS row_number, record
FROM read_csv({archive}, columns = {{'record': 'VARCHAR'}}, header = false, delim = chr(30), quote = '',
              escape = '', auto_detect = false, strict_mode = false, parallel = false)
