-- expect: ban-drop-database
DROP DATABASE staging_copy;
