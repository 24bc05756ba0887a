#' @useDynLib scdeep, .registration = TRUE
#' @importFrom methods is as
#' @importFrom stats setNames
NULL

# Thin .Call wrappers over the Rust functions (bindings/r/src/lib.rs).
scdeep_run <- function(p, i, x, cells, genes, labels, batches, source, config_json, imputed_genes, verbose)
  .Call(wrap__scdeep_run, p, i, x, cells, genes, labels, batches, source, config_json, imputed_genes, verbose)
scdeep_model_embed <- function(model, p, i, x, cells, genes, source, device, verbose)
  .Call(wrap__scdeep_model_embed, model, p, i, x, cells, genes, source, device, verbose)
scdeep_model_save <- function(model, path, overwrite) .Call(wrap__scdeep_model_save, model, path, overwrite)
scdeep_model_load <- function(path, method, device) .Call(wrap__scdeep_model_load, path, method, device)
scdeep_model_info <- function(model) .Call(wrap__scdeep_model_info, model)
scdeep_config <- function(method, n_clusters, has_truth, options_json)
  .Call(wrap__scdeep_config, method, n_clusters, has_truth, options_json)
scdeep_default_method <- function() .Call(wrap__scdeep_default_method)
scdeep_methods_json <- function() .Call(wrap__scdeep_methods_json)
scdeep_error_kinds_json <- function() .Call(wrap__scdeep_error_kinds_json)
scdeep_evaluate <- function(truth, pred, embedding, dims, average)
  .Call(wrap__scdeep_evaluate, truth, pred, embedding, dims, average)
scdeep_simulate <- function(params_json) .Call(wrap__scdeep_simulate, params_json)
scdeep_version <- function() .Call(wrap__scdeep_version)
