# Where the shared datasets and the scdeep CLI are: `make r-test` / `make r-check` set
# SCDEEP_DATA and SCDEEP_CLI; from a repository checkout they are found relative to it.
repo_root <- function() {
  for (d in c("../../..", "../../../..", "../../../../..")) {
    if (file.exists(file.path(d, "bindings", "r", "Cargo.toml"))) return(normalizePath(d))
  }
  NULL
}

data_dir <- function() {
  d <- Sys.getenv("SCDEEP_DATA")
  if (!nzchar(d) && !is.null(repo_root())) d <- file.path(repo_root(), "..", "shared", "data")
  # A missing data folder fails the test: a skip would let the suite pass unchecked.
  if (!nzchar(d) || !dir.exists(d)) stop("the shared datasets are not here (set SCDEEP_DATA to ../shared/data)")
  normalizePath(d)
}

scdeep_cli <- function() {
  b <- Sys.getenv("SCDEEP_CLI")
  if (!nzchar(b) && !is.null(repo_root())) b <- file.path(repo_root(), "target", "release", "scdeep")
  if (!nzchar(b) || !file.exists(b)) stop("the scdeep CLI is not built (make build, or set SCDEEP_CLI)")
  b
}
