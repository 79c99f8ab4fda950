-- Whether the published copy holds a table or view of this name.
SELECT count(*) > 0 FROM information_schema.tables WHERE table_schema = 'main' AND table_name = $name
