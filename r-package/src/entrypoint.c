// The package's DLL is only this loader. The Rust engine and libtorch live in
// scdeep_impl.so beside it, opened with RTLD_DEEPBIND: R's process already exports the
// BLAS it was built with (Debian: the reference BLAS) in the global scope, and without
// DEEPBIND libtorch's own calls to sgemm_ bind to it instead of libtorch's MKL, which
// made training about 15 times slower. Then the Rust module registers its routines
// (extendr) on this DLL, so .Call() finds them here.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <R.h>
#include <Rinternals.h>
#include <R_ext/Rdynload.h>

#ifndef SCDEEP_TORCH_LIB
#define SCDEEP_TORCH_LIB "(unknown)"
#endif

typedef void (*init_fn)(DllInfo *);

void R_init_scdeep(DllInfo *dll) {
    Dl_info self;
    char path[PATH_MAX];
    if (!dladdr((void *)R_init_scdeep, &self) || !self.dli_fname) {
        Rf_error("scdeep: cannot locate the package's shared library");
    }
    snprintf(path, sizeof path, "%s", self.dli_fname);
    char *slash = strrchr(path, '/');
    if (!slash) Rf_error("scdeep: unexpected library path %s", self.dli_fname);
    snprintf(slash + 1, sizeof path - (size_t)(slash + 1 - path), "scdeep_impl.so");
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (!h) {
        const char *why = dlerror();
        if (why && strstr(why, "libtorch") == NULL && strstr(why, "libc10") == NULL) {
            Rf_error("scdeep: cannot load the engine: %s", why);
        }
        Rf_error("scdeep: cannot load libtorch (%s). The package was built against the libtorch in %s, "
                 "which is gone or incomplete. Reinstall scdeep with a Python that has torch 2.13.0 "
                 "(SCDEEP_PYTHON=/path/to/python R CMD INSTALL ...) or with an unpacked libtorch "
                 "(LIBTORCH=/path/to/libtorch R CMD INSTALL ...).", why ? why : "unknown error", SCDEEP_TORCH_LIB);
    }
    init_fn init = (init_fn)dlsym(h, "R_init_scdeep_extendr");
    if (!init) Rf_error("scdeep: %s has no R_init_scdeep_extendr", path);
    init(dll);
}
