# common/seccomp.c: self-confinement with libseccomp (the hardening work owns this file).
