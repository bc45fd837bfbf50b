-- expect: none
-- The safe order: hand the objects over first; nothing is dropped.
REASSIGN OWNED BY legacy_app TO app_owner;
