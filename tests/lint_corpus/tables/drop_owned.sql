-- expect: ban-drop-owned
-- hazards: deletes-data, breaks-clients
-- Drops every table legacy_app owns, in any schema, with its rows.
DROP OWNED BY legacy_app;
