#ifndef CHAINFS_CCRYPTO_SHIM_H
#define CHAINFS_CCRYPTO_SHIM_H

// Only the EVP digest interface of libcrypto is used.
#include <openssl/evp.h>

#endif
