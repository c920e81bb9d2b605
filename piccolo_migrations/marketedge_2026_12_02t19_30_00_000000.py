"""Hand-written: a DELETE of sessions that ends none notifies nobody.

`user_sessions_ended` ran once per DELETE statement, rows or not, so a logout with an
unknown cookie (or the revocation of a user without sessions) told every replica to drop
its whole session cache. It now notifies `sessions_changed` only when the statement removed
a row (a transition table holds what it removed). The writer's own process already
announces only real endings (`api.auth.service`).
"""

from api.migration_sql import sql_migration

ID = "2026-12-02T19:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "Sessions: a delete that ends no session notifies nothing"

STATEMENTS = [
    """
    CREATE FUNCTION notify_sessions_ended() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF EXISTS (SELECT 1 FROM ended_sessions) THEN
            PERFORM pg_notify('sessions_changed', TG_TABLE_NAME);
        END IF;
        RETURN NULL;
    END
    $$
    """,
    "DROP TRIGGER user_sessions_ended ON user_sessions",
    """
    CREATE TRIGGER user_sessions_ended AFTER DELETE ON user_sessions
    REFERENCING OLD TABLE AS ended_sessions
    FOR EACH STATEMENT EXECUTE FUNCTION notify_sessions_ended()
    """,
]

forwards = sql_migration(ID, DESCRIPTION, STATEMENTS)
