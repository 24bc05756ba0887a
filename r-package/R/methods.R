#' The methods scdeep offers, with their default options
#'
#' @return A data frame with one row per method: `name`, `description`, `reference`,
#'   and `defaults`, a list column holding each method's full default configuration
#'   (every option `RunScdeep(...)` accepts).
#' @examples
#' m <- ScdeepMethods()
#' m$name
#' m$defaults[[which(m$name == "scmae")]]$params
#' @export
ScdeepMethods <- function() {
  m <- jsonlite::fromJSON(.core(scdeep_methods_json), simplifyVector = FALSE)
  data.frame(
    name = vapply(m, `[[`, "", "name"),
    description = vapply(m, `[[`, "", "description"),
    reference = vapply(m, `[[`, "", "reference"),
    defaults = I(lapply(m, `[[`, "default_config")),
    stringsAsFactors = FALSE
  )
}

#' Score clusters against ground truth
#'
#' The same metrics as scikit-learn's (ARI, NMI, AMI, homogeneity, completeness,
#' V-measure) plus purity, accuracy after Hungarian matching and, given an embedding,
#' the silhouette width.
#'
#' @param labels Predicted clusters (factor, integer or character), one per cell.
#' @param truth Ground-truth labels, one per cell.
#' @param embedding Optional cells x dims matrix for the silhouette.
#' @param average NMI/AMI normalisation: `"arithmetic"` (scikit-learn's default),
#'   `"geometric"`, `"max"` or `"min"`.
#' @return A named list of metrics.
#' @examples
#' ScdeepEvaluate(c(1, 1, 2, 2), c("a", "a", "b", "b"))$ari
#' @export
ScdeepEvaluate <- function(labels, truth, embedding = NULL, average = "arithmetic") {
  if (length(labels) != length(truth)) {
    .arg_error("truth", length(truth), " labels for ", length(labels), " predictions")
  }
  if (anyNA(labels) || anyNA(truth)) .arg_error(if (anyNA(labels)) "labels" else "truth", "contains NA")
  dims <- 0L
  if (!is.null(embedding)) {
    embedding <- as.matrix(embedding)
    if (nrow(embedding) != length(labels)) .arg_error("embedding", nrow(embedding), " rows for ", length(labels), " cells")
    dims <- ncol(embedding)
    embedding <- as.numeric(t(embedding))
  }
  .from_json(.core(scdeep_evaluate, as.character(truth), as.character(labels), embedding, dims, average))
}

#' Simulate labelled counts
#'
#' A Splatter-like simulator (groups with differentially expressed genes, optional
#' batches and dropout) in the compiled core; the same one `scdeep simulate` and the
#' Python package use.
#'
#' @param n.cells,n.genes Size.
#' @param groups Group proportions.
#' @param batches Cells per batch (default: one batch).
#' @param de.prob Probability that a gene is differentially expressed in a group.
#' @param seed Random seed.
#' @param class What to return: `"Seurat"`, `"SingleCellExperiment"` or `"dgCMatrix"`.
#' @param ... Other simulator parameters by name (e.g. `dropout_type = "experiment"`,
#'   `dropout_mid = 0`); unknown names are an error.
#' @return A Seurat object (groups in `meta.data$group`, batches in `$batch`), a
#'   SingleCellExperiment (the same in `colData`, the noiseless counts in assay
#'   `"true_counts"`) or a genes x cells `dgCMatrix` with attributes `groups` and
#'   `batches`.
#' @examples
#' x <- ScdeepSimulate(n.cells = 100, n.genes = 200, class = "dgCMatrix")
#' table(attr(x, "groups"))
#' @export
ScdeepSimulate <- function(n.cells = 1000, n.genes = 2000, groups = c(0.5, 0.3, 0.2), batches = NULL,
                           de.prob = 0.1, seed = 0, class = c("Seurat", "SingleCellExperiment", "dgCMatrix"), ...) {
  class <- match.arg(class)
  params <- c(list(n_cells = n.cells, n_genes = n.genes, group_prob = I(as.numeric(groups)), de_prob = de.prob,
                   seed = seed), list(...))
  if (!is.null(batches)) params$batch_cells <- I(as.integer(batches))
  s <- .core(scdeep_simulate, .options_json(params))
  mk <- function(m) {
    Matrix::sparseMatrix(i = m$i, p = m$p, x = m$x, dims = c(length(s$genes), length(s$cells)),
                         dimnames = list(s$genes, s$cells), index1 = FALSE)
  }
  counts <- mk(s$counts)
  meta <- data.frame(group = factor(s$groups), batch = factor(s$batches), row.names = s$cells)
  switch(class,
    dgCMatrix = structure(counts, groups = s$groups, batches = s$batches),
    Seurat = {
      .need("SeuratObject")
      SeuratObject::CreateSeuratObject(counts, meta.data = meta)
    },
    SingleCellExperiment = {
      .need("SingleCellExperiment")
      assays <- list(counts = counts)
      if (!is.null(s$true_counts)) assays$true_counts <- mk(s$true_counts)
      SingleCellExperiment::SingleCellExperiment(assays, colData = meta)
    }
  )
}

#' Versions of scdeep and the libtorch it runs on
#'
#' @return A list: `scdeep`, `libtorch`, and `cuda` (whether a CUDA device is usable).
#' @examples
#' ScdeepVersion()$libtorch
#' @export
ScdeepVersion <- function() {
  scdeep_version()
}
