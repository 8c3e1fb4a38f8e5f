#ifndef CHAINFS_CFUSE_SHIM_H
#define CHAINFS_CFUSE_SHIM_H

// The low-level API as of libfuse 3.14, the version Debian 12 ships.
#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

// fuse_session_loop_mt is a macro over a versioned symbol in some builds;
// Swift cannot call a function-like macro, so it gets one plain name here.
static inline int chainfs_session_loop_mt(struct fuse_session *session,
                                          struct fuse_loop_config *config) {
  return fuse_session_loop_mt(session, config);
}

#endif
