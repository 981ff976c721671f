#ifndef CTERNSYSTEM_H
#define CTERNSYSTEM_H

/// Makes the calling process a "child subreaper" (prctl PR_SET_CHILD_SUBREAPER): processes its
/// descendants orphan are reparented to it instead of to init, so the node agent can find and end
/// every process a job started, even those that put themselves in a new session.
/// Returns 0, or -1 with errno set. prctl is variadic, which Swift cannot call.
int tern_become_child_subreaper(void);

#endif
