#ifndef TERN_CLIBPQ_SHIM_H
#define TERN_CLIBPQ_SHIM_H
#include <libpq-fe.h>
#include <poll.h>

/* Field codes of PQresultErrorField are macros (chars) Swift cannot import; expose them as functions. */
static inline int tern_pg_diag_sqlstate(void) { return PG_DIAG_SQLSTATE; }
static inline int tern_pg_diag_message_primary(void) { return PG_DIAG_MESSAGE_PRIMARY; }
static inline int tern_pg_diag_message_detail(void) { return PG_DIAG_MESSAGE_DETAIL; }
static inline int tern_pg_diag_message_hint(void) { return PG_DIAG_MESSAGE_HINT; }
static inline int tern_pg_diag_constraint_name(void) { return PG_DIAG_CONSTRAINT_NAME; }
static inline int tern_pg_diag_table_name(void) { return PG_DIAG_TABLE_NAME; }
static inline int tern_pg_diag_column_name(void) { return PG_DIAG_COLUMN_NAME; }
static inline int tern_pg_diag_severity(void) { return PG_DIAG_SEVERITY_NONLOCALIZED; }
static inline int tern_pg_diag_statement_position(void) { return PG_DIAG_STATEMENT_POSITION; }

/* A notice receiver that drops server notices instead of printing them to stderr. */
static inline void tern_pg_ignore_notice(void *arg, const PGresult *res) { (void)arg; (void)res; }
static inline void tern_pg_silence_notices(PGconn *conn) { PQsetNoticeReceiver(conn, tern_pg_ignore_notice, NULL); }
#endif
