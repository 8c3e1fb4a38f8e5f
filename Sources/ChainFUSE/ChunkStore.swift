import ChainCore
