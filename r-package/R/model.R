.new_model <- function(ptr) {
  info <- .core(scdeep_model_info, ptr)
  structure(list(ptr = ptr, method = info$method, genes = info$genes), class = "scdeep_model")
}

#' @method print scdeep_model
#' @export
print.scdeep_model <- function(x, ...) {
  cat("<scdeep_model> method ", x$method, ", ", length(x$genes), " genes\n", sep = "")
  invisible(x)
}

.check_model <- function(model) {
  if (!inherits(model, "scdeep_model")) {
    .arg_error("model", "expected an scdeep_model (from RunScdeep(), ScdeepModel() or LoadScdeepModel()), got ",
               class(model)[1])
  }
  model
}

#' Save, load and get trained models
#'
#' A model folder holds the weights (`model.safetensors`), the run's config, the genes
#' and the fitted preprocessing; it is the same folder the CLI (`scdeep run
#' --save-model`) and the Python package write, so a model trained in one can embed data
#' in another. Models are not kept by `saveRDS()`: save them with `SaveScdeepModel()`.
#'
#' @param model An `scdeep_model`.
#' @param path The model folder.
#' @param method Expected method (optional): loading another method's model is an error.
#' @param device `"auto"`, `"cpu"`, `"cuda"` or `"cuda:N"`.
#' @param overwrite Write into an existing folder that scdeep did not write (its other
#'   files stay). Without it such a folder is refused; an empty folder or an earlier
#'   scdeep model folder is replaced.
#' @return `SaveScdeepModel()` returns `path` invisibly; `LoadScdeepModel()` and
#'   `ScdeepModel()` an `scdeep_model`.
#' @examples
#' counts <- ScdeepSimulate(n.cells = 200, n.genes = 300, class = "dgCMatrix", seed = 1)
#' res <- RunScdeep(counts, method = "pca", n.clusters = 3, verbose = FALSE)
#' dir <- file.path(tempdir(), "pca-model")
#' SaveScdeepModel(res$model, dir)
#' m <- LoadScdeepModel(dir)
#' emb <- EmbedScdeep(counts, m, verbose = FALSE)
#' @export
SaveScdeepModel <- function(model, path, overwrite = FALSE) {
  .check_model(model)
  if (!is.character(path) || length(path) != 1L) .arg_error("path", "expected one folder name")
  if (!is.logical(overwrite) || length(overwrite) != 1L || is.na(overwrite)) .arg_error("overwrite", "expected TRUE or FALSE")
  .core(scdeep_model_save, model$ptr, path.expand(path), overwrite)
  invisible(path)
}

#' @rdname SaveScdeepModel
#' @export
LoadScdeepModel <- function(path, method = NULL, device = "auto") {
  if (!is.character(path) || length(path) != 1L) .arg_error("path", "expected one folder name")
  .new_model(.core(scdeep_model_load, path.expand(path), method, device))
}

#' @rdname SaveScdeepModel
#' @param object A Seurat object or SingleCellExperiment that `RunScdeep()` ran on.
#' @param name The reduction (Seurat) or `reducedDim` (SCE) name of that run.
#' @export
ScdeepModel <- function(object, name) {
  st <- if (inherits(object, "Seurat")) {
    if (!name %in% names(object@reductions)) .arg_error("name", "no reduction '", name, "'")
    SeuratObject::Misc(object[[name]], slot = "scdeep")
  } else if (is(object, "SingleCellExperiment")) {
    S4Vectors::metadata(object)$scdeep[[name]]
  } else {
    .arg_error("object", "expected a Seurat object or SingleCellExperiment, got ", class(object)[1])
  }
  if (is.null(st$model)) .arg_error("name", "'", name, "' was not made by RunScdeep()")
  st$model
}

#' Embed new cells with a trained model
#'
#' Prepares the counts as the model's training data was prepared (same genes, the saved
#' normalisation and scaling; genes the data lacks count as zeros) and embeds them.
#'
#' @param object A Seurat object, SingleCellExperiment or genes x cells count matrix.
#' @param model An `scdeep_model`.
#' @param device `"auto"`, `"cpu"`, `"cuda"` or `"cuda:N"`.
#' @param verbose Print progress.
#' @param ... Passed to the methods.
#' @return For a matrix, the embedding (cells x dims, `NA` rows for cells removed by
#'   preprocessing) with attribute `missing_genes`; for Seurat, the object with a
#'   `DimReduc` `reduction.name`; for a SingleCellExperiment, with `reducedDim`
#'   `dimred.name`.
#' @export
EmbedScdeep <- function(object, model, ...) {
  UseMethod("EmbedScdeep")
}

#' @rdname EmbedScdeep
#' @export
EmbedScdeep.default <- function(object, model, ...) {
  .arg_error("object", "expected a Seurat object, a SingleCellExperiment or a genes x cells count matrix, got ",
             class(object)[1])
}

#' @rdname EmbedScdeep
#' @export
EmbedScdeep.dgCMatrix <- function(object, model, device = "auto", verbose = TRUE, ...) {
  .embed_counts(.as_counts(object, "object"), .check_model(model), device, verbose, "counts")
}

#' @rdname EmbedScdeep
#' @export
EmbedScdeep.matrix <- EmbedScdeep.dgCMatrix

#' @rdname EmbedScdeep
#' @param assay Seurat assay (default: `DefaultAssay(object)`).
#' @param reduction.name,reduction.key Name and key of the new `DimReduc`.
#' @export
EmbedScdeep.Seurat <- function(object, model, assay = NULL, reduction.name = model$method,
                               reduction.key = NULL, device = "auto", verbose = TRUE, ...) {
  .check_model(model)
  assay <- assay %||% SeuratObject::DefaultAssay(object)
  counts <- .as_counts(.seurat_counts(object, assay, "counts"), "object")
  key <- .reduction_key(reduction.name, reduction.key)
  emb <- .embed_counts(counts, model, device, verbose, sprintf("assay '%s'", assay))
  emb <- emb[stats::complete.cases(emb), , drop = FALSE]
  colnames(emb) <- paste0(key, seq_len(ncol(emb)))
  object[[reduction.name]] <- SeuratObject::CreateDimReducObject(embeddings = emb, key = key, assay = assay)
  SeuratObject::LogSeuratCommand(object)
}

#' @rdname EmbedScdeep
#' @param assay.type SCE assay with raw counts.
#' @param dimred.name `reducedDim` name.
#' @export
EmbedScdeep.SingleCellExperiment <- function(object, model, assay.type = "counts",
                                             dimred.name = toupper(model$method), device = "auto",
                                             verbose = TRUE, ...) {
  .check_model(model)
  counts <- .as_counts(SummarizedExperiment::assay(object, assay.type), "assay.type")
  SingleCellExperiment::reducedDim(object, dimred.name) <- .embed_counts(counts, model, device, verbose,
                                                                         sprintf("assay '%s'", assay.type))
  object
}

.embed_counts <- function(counts, model, device, verbose, source) {
  r <- .core(scdeep_model_embed, model$ptr, counts@p, counts@i, counts@x, colnames(counts), rownames(counts),
             source, device, isTRUE(verbose))
  emb <- matrix(r$embedding, ncol = r$dims, byrow = TRUE,
                dimnames = list(colnames(counts), paste0(toupper(model$method), "_", seq_len(r$dims))))
  if (r$missing_genes > 0 && isTRUE(verbose)) {
    message("scdeep: ", r$missing_genes, " of the model's ", length(model$genes), " genes are not in the data (counted as zeros)")
  }
  attr(emb, "missing_genes") <- r$missing_genes
  emb
}
