# Calls into the Rust core (src/, bindings/r) and turns its error values into R
# conditions. The core never unwinds through R: a failing call returns a string of class
# `scdeep_core_error` with the error's kind, raised here with stop().

.core <- function(f, ...) {
  r <- f(...)
  if (inherits(r, "scdeep_core_error")) {
    .scdeep_stop(as.character(unclass(r)), kind = attr(r, "kind"))
  }
  r
}

# The user's call into the package (the outermost call of an exported function), for
# error messages: `Error in RunScdeep(obj, slot = "data")`, not an internal helper.
.user_call <- function() {
  for (cl in sys.calls()) {
    f <- cl[[1]]
    name <- if (is.name(f)) as.character(f) else if (is.call(f) && length(f) == 3L) as.character(f[[3]]) else ""
    if (length(name) == 1L && grepl("^(RunScdeep|EmbedScdeep|Scdeep|SaveScdeep|LoadScdeep)", name)) return(cl)
  }
  NULL
}

# The core's error table (scdeep_core::error::ERROR_KINDS): one row per kind.
.error_kinds <- local({
  kinds <- NULL
  function() {
    if (is.null(kinds)) kinds <<- jsonlite::fromJSON(scdeep_error_kinds_json(), simplifyVector = FALSE)
    kinds
  }
})

# Raise an error of the kind's class in the core's table, then scdeep_error, error, condition.
.scdeep_stop <- function(message, kind = "option") {
  row <- Filter(function(k) identical(k$kind, kind), .error_kinds())
  first <- if (length(row)) row[[1]]$r_class else "scdeep_error_numeric"
  cond <- structure(
    class = c(first, "scdeep_error", "error", "condition"),
    list(message = message, call = .user_call())
  )
  stop(cond)
}

# An error about one argument: names it, as the core does.
.arg_error <- function(arg, ...) {
  .scdeep_stop(paste0("argument `", arg, "`: ", ...), kind = "option")
}

`%||%` <- function(a, b) if (is.null(a)) b else a

.from_json <- function(x) {
  if (is.null(x) || (length(x) == 1L && is.na(x))) NULL else jsonlite::fromJSON(x, simplifyVector = TRUE, simplifyDataFrame = TRUE)
}

# Options from `...` as the JSON object core's ConfigBuilder::options expects: method
# parameters by name (mask_rate = 0.3), whole sections as lists (train = list(epochs = 5)).
.options_json <- function(options) {
  if (length(options) && (is.null(names(options)) || any(names(options) == ""))) {
    .arg_error("...", "method options must be named (e.g. mask_rate = 0.3, train = list(epochs = 50))")
  }
  # Dotted R spellings of the options are accepted (mask.rate = mask_rate).
  if (length(options)) names(options) <- gsub(".", "_", names(options), fixed = TRUE)
  as.character(jsonlite::toJSON(if (length(options)) options else structure(list(), names = character()),
                                auto_unbox = TRUE, null = "null", digits = NA))
}

# The method of a call: the one given, or the core's default.
.method <- function(method) {
  if (is.null(method)) return(scdeep_default_method())
  if (!is.character(method) || length(method) != 1L || is.na(method)) .arg_error("method", "expected one method name (see ScdeepMethods())")
  method
}

# The config request (JSON) for a call, validated.
.config <- function(method, n.clusters, has.truth, device, seed, threads, options) {
  if (!is.null(threads)) options$threads <- as.integer(threads)
  options$device <- device
  options$seed <- seed
  .core(scdeep_config, method, n.clusters, has.truth, .options_json(options))
}
