#' Learn a deep embedding of single cells and cluster them
#'
#' Trains one of scdeep's self-supervised models (see [ScdeepMethods()]) on raw counts,
#' embeds the cells and clusters them, all in the package's compiled Rust/libtorch
#' engine (no Python at run time). Results are added to the object the way Seurat and
#' Bioconductor users expect.
#'
#' With neither `n.clusters` nor ground truth, the default method (the consensus) estimates k
#' (run$clustering$k_estimate says how); other methods cluster with Leiden on the embedding's
#' k-nearest-neighbour graph (resolution 1.0); with `n.clusters`, K-means.
#' Cells that the method's preprocessing removes (too few counts) get `NA` clusters and,
#' in a Seurat object, no embedding row.
#'
#' @param object A `Seurat` object, a `SingleCellExperiment`, or a genes x cells count
#'   matrix (`dgCMatrix` or base `matrix`).
#' @param method Method name, e.g. `"scmae"` or `"pca"`; `NULL` is the core's default
#'   (the same in every door: the CLI, C, Python and R).
#' @param n.clusters Number of clusters (K-means), or `NULL`.
#' @param device `"auto"`, `"cpu"`, `"cuda"` or `"cuda:N"`.
#' @param seed Random seed; the same seed, device and `threads` give the same labels.
#' @param threads Number of libtorch threads (default 1).
#' @param verbose Print progress (one line per stage, about 20 lines of training).
#' @param ... Method options by name, e.g. `mask_rate = 0.3` (dots may replace
#'   underscores), or whole option sections as lists: `train = list(epochs = 50)`,
#'   `preprocess = list(n_top_genes = 1000)`, `cluster = list(algorithm = "leiden")`.
#'   [ScdeepMethods()] lists every option with its default.
#' @return For a `Seurat` object or `SingleCellExperiment`, the object with the results
#'   added (see the methods' sections). For a matrix, a list with `embedding` (cells x
#'   dims), `clusters` (a factor, one per input cell), `metrics` (when `labels` is
#'   given), `history` (a data frame of losses per epoch), `config`, `info` (run.json), `scdeep`
#'   (the keys of Python's and the CLI's `uns['scdeep'][method]`: config, run, versions,
#'   timings_s, history, metrics; what `misc` and `metadata` store, with the model) and `model`
#'   (an `scdeep_model`); methods that impute (`"maskclass"`) add `imputed`, a genes x cells
#'   sparse matrix of the method's genes in its log-normalised scale (observed non-zeros
#'   unchanged).
#' @seealso [EmbedScdeep()], [SaveScdeepModel()], [ScdeepEvaluate()]
#' @examples
#' counts <- ScdeepSimulate(n.cells = 200, n.genes = 300, groups = c(0.5, 0.5),
#'                          class = "dgCMatrix", seed = 1)
#' res <- RunScdeep(counts, method = "pca", n.clusters = 2, labels = attr(counts, "groups"),
#'                  verbose = FALSE)
#' res$metrics$ari
#' @export
RunScdeep <- function(object, ...) {
  UseMethod("RunScdeep")
}

#' @rdname RunScdeep
#' @export
RunScdeep.default <- function(object, ...) {
  .arg_error("object", "expected a Seurat object, a SingleCellExperiment or a genes x cells count matrix, got an object of class ",
             paste(class(object), collapse = "/"))
}

#' @rdname RunScdeep
#' @param labels Ground-truth labels, one per cell (matrix method): adds metrics.
#' @param batches Each cell's batch (sample, donor, lane), one per cell (matrix method):
#'   the embedding is corrected for them before clustering and, with labels, the metrics
#'   add scIB's batch silhouette, iLISI, cLISI and graph connectivity.
#' @param batch.correction How the embedding of several batches is corrected before
#'   clustering: `"harmony"` (the default) or `"none"`.
#' @param source Name of the data in error messages.
#' @export
RunScdeep.dgCMatrix <- function(object, method = NULL, n.clusters = NULL, labels = NULL,
                                device = "auto", seed = 0, threads = NULL, verbose = TRUE,
                                source = "counts", ..., batches = NULL, batch.correction = NULL) {
  method <- .method(method)
  .run_counts(.as_counts(object, "object"), method, n.clusters, labels, device, seed, threads,
              verbose, source, list(...), batches = batches, batch.correction = batch.correction)
}

#' @rdname RunScdeep
#' @export
RunScdeep.matrix <- RunScdeep.dgCMatrix

#' @rdname RunScdeep
#' @param assay Seurat assay (default: `DefaultAssay(object)`).
#' @param slot Where the raw counts are: must be `"counts"` (the method normalises them).
#' @param features Genes to use (default: `VariableFeatures(object)`, or all genes when
#'   none are set).
#' @param reduction.name Name of the `DimReduc` (default: the method).
#' @param reduction.key Key of its columns (default: the upper-cased name and `_`, e.g.
#'   `"SCMAE_"`); must match `^[a-zA-Z][a-zA-Z0-9]*_$`.
#' @param label.column A `meta.data` (Seurat) or `colData` (SCE) column with ground truth:
#'   metrics are computed and stored.
#' @param batch A `meta.data` (Seurat) or `colData` (SCE) column with each cell's batch
#'   (e.g. `"orig.ident"`): the embedding is corrected for it before clustering (Harmony),
#'   the results record each cluster's cells per batch and, with `label.column`, the
#'   batch metrics.
#' @param cluster.name `meta.data` column for the clusters (default
#'   `"<reduction.name>_clusters"`).
#' @param set.ident Set `Idents(object)` to the clusters.
#' @param save.model A folder to save the trained model in (see [LoadScdeepModel()]).
#' @section Seurat: Stores a `DimReduc` named `reduction.name` (its `misc` holds the
#'   config, metrics, loss history and the model), the clusters in `meta.data`, and logs
#'   the command (`LogSeuratCommand`). Use it downstream as any reduction:
#'   `FindNeighbors(obj, reduction = "scmae", dims = 1:128)`, `RunUMAP(obj, reduction =
#'   "scmae", dims = 1:128)`. Methods that impute (`"maskclass"`) add an assay named
#'   `imputed.assay` whose `data` holds the imputed values of the method's genes.
#'   Tested with Seurat 4.3; Seurat 5's layered assays are read with `LayerData()` (not
#'   tested here).
#' @param imputed.assay Name of the assay for an imputed matrix (Seurat).
#' @export
RunScdeep.Seurat <- function(object, method = NULL, n.clusters = NULL, assay = NULL,
                             slot = "counts", features = NULL, reduction.name = method,
                             reduction.key = NULL, label.column = NULL,
                             cluster.name = paste0(reduction.name, "_clusters"), set.ident = FALSE,
                             device = "auto", seed = 0, threads = NULL, verbose = TRUE,
                             save.model = NULL, imputed.assay = "scdeep_imputed", ...,
                             batch = NULL, batch.correction = NULL) {
  method <- .method(method)
  .need("SeuratObject")
  assay <- assay %||% SeuratObject::DefaultAssay(object)
  if (!assay %in% names(object@assays)) {
    .arg_error("assay", "no assay '", assay, "' in the object (has ", paste(names(object@assays), collapse = ", "), ")")
  }
  counts <- .seurat_counts(object, assay, slot)
  feats <- .features(features %||% SeuratObject::VariableFeatures(object, assay = assay), rownames(counts))
  counts <- .as_counts(counts[feats, , drop = FALSE], "slot")
  key <- .reduction_key(reduction.name, reduction.key)
  truth <- .truth(object@meta.data, label.column, "meta.data")
  batches <- .truth(object@meta.data, batch, "meta.data", "batch")
  res <- .run_counts(counts, method, n.clusters, truth, device, seed, threads, verbose,
                     sprintf("assay '%s', slot '%s'", assay, slot), list(...), batches = batches,
                     batch.key = batch, batch.correction = batch.correction)
  if (!is.null(save.model)) SaveScdeepModel(res$model, save.model)
  emb <- res$embedding[!is.na(res$clusters), , drop = FALSE]
  colnames(emb) <- paste0(key, seq_len(ncol(emb)))
  object[[reduction.name]] <- SeuratObject::CreateDimReducObject(
    embeddings = emb, key = key, assay = assay,
    misc = list(scdeep = c(res$scdeep, list(model = res$model)))
  )
  object[[cluster.name]] <- res$clusters
  if (!is.null(res$imputed)) {
    a <- SeuratObject::CreateAssayObject(data = res$imputed)
    SeuratObject::Key(a) <- paste0(tolower(gsub("[^A-Za-z0-9]", "", imputed.assay)), "_")
    object[[imputed.assay]] <- a
  }
  if (isTRUE(set.ident)) SeuratObject::Idents(object) <- cluster.name
  SeuratObject::LogSeuratCommand(object)
}

#' @rdname RunScdeep
#' @param assay.type SCE assay with raw counts (default `"counts"`).
#' @param dimred.name `reducedDim` name (default: the upper-cased method, e.g. `"SCMAE"`).
#' @section SingleCellExperiment: Stores `reducedDim(object, dimred.name)` (cells
#'   removed by preprocessing get `NA` rows), the clusters in `colLabels(object)` or in
#'   `colData(object)[[cluster.name]]` when `cluster.name` is given, and the config,
#'   metrics, history and model in `metadata(object)$scdeep[[dimred.name]]`. Methods that
#'   impute add `assay(object, imputed.name)` (all genes; those the method did not use
#'   are empty) and the logical `rowData(object)$scdeep_imputed`.
#' @param imputed.name Assay name for an imputed matrix (SingleCellExperiment).
#' @export
RunScdeep.SingleCellExperiment <- function(object, method = NULL, n.clusters = NULL,
                                           assay.type = "counts", features = NULL,
                                           dimred.name = toupper(method), label.column = NULL,
                                           cluster.name = NULL, device = "auto", seed = 0,
                                           threads = NULL, verbose = TRUE, save.model = NULL,
                                           imputed.name = "imputed", ...,
                                           batch = NULL, batch.correction = NULL) {
  method <- .method(method)
  .need("SingleCellExperiment")
  if (!assay.type %in% SummarizedExperiment::assayNames(object)) {
    .arg_error("assay.type", "no assay '", assay.type, "' in the object (has ",
               paste(SummarizedExperiment::assayNames(object), collapse = ", "), ")")
  }
  if (assay.type %in% c("logcounts", "normcounts", "scaledata")) {
    .arg_error("assay.type", "'", assay.type, "' holds normalised values; scdeep needs raw counts (assay.type = \"counts\")")
  }
  counts <- SummarizedExperiment::assay(object, assay.type)
  if (is.null(rownames(counts))) rownames(counts) <- paste0("gene", seq_len(nrow(counts)))
  if (is.null(colnames(counts))) colnames(counts) <- paste0("cell", seq_len(ncol(counts)))
  feats <- .features(features, rownames(counts))
  counts <- .as_counts(counts[feats, , drop = FALSE], "assay.type")
  cd <- as.data.frame(SummarizedExperiment::colData(object))
  truth <- .truth(cd, label.column, "colData")
  batches <- .truth(cd, batch, "colData", "batch")
  all <- rownames(object) %||% paste0("gene", seq_len(nrow(object)))
  res <- .run_counts(counts, method, n.clusters, truth, device, seed, threads, verbose,
                     sprintf("assay '%s'", assay.type), list(...), imputed.genes = all,
                     batches = batches, batch.key = batch, batch.correction = batch.correction)
  if (!is.null(save.model)) SaveScdeepModel(res$model, save.model)
  SingleCellExperiment::reducedDim(object, dimred.name) <- res$embedding
  if (is.null(cluster.name)) {
    SingleCellExperiment::colLabels(object) <- res$clusters
  } else {
    SummarizedExperiment::colData(object)[[cluster.name]] <- res$clusters
  }
  if (!is.null(res$imputed)) {
    # placed by the core on every gene of the object (genes the method did not use are empty)
    full <- res$imputed
    dimnames(full) <- dimnames(object)
    SummarizedExperiment::assay(object, imputed.name, withDimnames = FALSE) <- full
    SummarizedExperiment::rowData(object)$scdeep_imputed <- res$imputed_covered
  }
  md <- S4Vectors::metadata(object)
  md$scdeep[[dimred.name]] <- c(res$scdeep, list(model = res$model))
  S4Vectors::metadata(object) <- md
  object
}

# ---- helpers ---------------------------------------------------------------------------

.need <- function(pkg) {
  if (!requireNamespace(pkg, quietly = TRUE)) {
    .scdeep_stop(paste0("package '", pkg, "' is needed for this object class; install it"))
  }
}

# Counts of a Seurat assay (Seurat 5 layers when present, else the v4 slots).
.seurat_counts <- function(object, assay, slot) {
  if (!identical(slot, "counts")) {
    what <- if (identical(slot, "data")) "log-normalised values" else if (identical(slot, "scale.data")) "scaled values" else "no raw counts"
    .arg_error("slot", "'", slot, "' holds ", what, "; scdeep normalises raw counts itself (use slot = \"counts\")")
  }
  if (utils::packageVersion("SeuratObject") >= "5.0.0") {
    # Seurat 5 (not installable here, not tested): looked up at run time so that
    # checking against SeuratObject 4 does not flag a missing export.
    layer_data <- utils::getFromNamespace("LayerData", "SeuratObject")
    counts <- layer_data(object[[assay]], layer = slot)
  } else {
    counts <- SeuratObject::GetAssayData(object, slot = slot, assay = assay)
  }
  if (!length(counts) || !nrow(counts)) {
    .arg_error("slot", "assay '", assay, "' has no '", slot, "' (empty)")
  }
  counts
}

.features <- function(features, available) {
  if (is.null(features) || !length(features)) return(available)
  if (!is.character(features)) .arg_error("features", "expected gene names (a character vector)")
  missing <- setdiff(features, available)
  if (length(missing)) {
    .arg_error("features", length(missing), " of ", length(features), " genes are not in the data: ",
               paste(utils::head(missing, 5), collapse = ", "), if (length(missing) > 5) ", ...")
  }
  unique(features)
}

.reduction_key <- function(name, key) {
  key <- key %||% paste0(toupper(gsub("[^A-Za-z0-9]", "", name)), "_")
  if (!grepl("^[a-zA-Z][a-zA-Z0-9]*_$", key)) {
    .arg_error("reduction.key", "'", key, "' is not a valid key (letters and digits, starting with a letter, then '_', e.g. \"SCMAE_\")")
  }
  key
}

.truth <- function(df, column, where, arg = "label.column") {
  if (is.null(column)) return(NULL)
  if (!is.character(column) || length(column) != 1 || !column %in% colnames(df)) {
    .arg_error(arg, "no column '", paste(column, collapse = ", "), "' in ", where, " (has ",
               paste(colnames(df), collapse = ", "), ")")
  }
  v <- df[[column]]
  if (anyNA(v)) .arg_error(arg, "column '", column, "' of ", where, " is NA for ", sum(is.na(v)), " cells")
  as.character(v)
}

# A genes x cells dgCMatrix (sparse input stays sparse).
.as_counts <- function(x, arg) {
  if (!inherits(x, "dgCMatrix")) {
    x <- tryCatch(
      if (is.matrix(x)) Matrix::Matrix(x, sparse = TRUE) else as(x, "CsparseMatrix"),
      error = function(e) .arg_error(arg, "cannot use an object of class ", class(x)[1], " as a count matrix: ",
                                     conditionMessage(e))
    )
    x <- as(as(x, "generalMatrix"), "dMatrix")
    if (!inherits(x, "dgCMatrix")) x <- as(x, "dgCMatrix")
  }
  if (is.null(rownames(x))) rownames(x) <- paste0("gene", seq_len(nrow(x)))
  if (is.null(colnames(x))) colnames(x) <- paste0("cell", seq_len(ncol(x)))
  x
}

# core's uns entry (scdeep_core::results::uns_entry) as R objects: the keys of
# adata.uns['scdeep'][key] from Python and the CLI; config and run parsed, the loss
# columns a data frame (NA where an epoch lacks a value).
.uns <- function(json) {
  u <- jsonlite::fromJSON(json, simplifyVector = TRUE)
  u$config <- .from_json(u$config)
  u$run <- .from_json(u$run)
  h <- lapply(u$history, as.numeric)
  u$history <- if (length(h)) as.data.frame(h, check.names = FALSE) else data.frame()
  u
}

# The results arrive placed on the input's cells (and the imputed matrix on
# `imputed.genes`, or the method's genes) by the core; here they only become R objects.
.run_counts <- function(counts, method, n.clusters, labels, device, seed, threads, verbose, source, options,
                        imputed.genes = NULL, batches = NULL, batch.key = NULL, batch.correction = NULL) {
  if (!is.null(labels) && length(labels) != ncol(counts)) {
    .arg_error("labels", length(labels), " labels for ", ncol(counts), " cells")
  }
  if (!is.null(batches) && length(batches) != ncol(counts)) {
    .arg_error(if (is.null(batch.key)) "batches" else "batch", length(batches), " batch values for ", ncol(counts), " cells")
  }
  if (!is.null(batch.key)) options$batch <- utils::modifyList(as.list(options$batch), list(key = batch.key))
  if (!is.null(batch.correction)) options$batch <- utils::modifyList(as.list(options$batch), list(correction = batch.correction))
  cfg <- .config(method, n.clusters, !is.null(labels), device, seed, threads, options)
  r <- .core(scdeep_run, counts@p, counts@i, counts@x, colnames(counts), rownames(counts),
             if (is.null(labels)) NULL else as.character(labels),
             if (is.null(batches)) NULL else as.character(batches), source, cfg, imputed.genes, isTRUE(verbose))
  emb <- matrix(r$embedding, ncol = r$dims, byrow = TRUE,
                dimnames = list(colnames(counts), paste0(toupper(method), "_", seq_len(r$dims))))
  clusters <- factor(r$labels, levels = sort(unique(r$labels[!is.na(r$labels)])))
  names(clusters) <- colnames(counts)
  imputed <- NULL
  if (!is.null(r$imputed)) {
    m <- r$imputed
    imputed <- methods::new("dgCMatrix", p = m$p, i = m$i, x = m$x, Dim = c(length(m$genes), ncol(counts)),
                            Dimnames = list(m$genes, colnames(counts)))
  }
  scdeep <- .uns(r$uns)
  list(
    embedding = emb,
    imputed = imputed,
    imputed_covered = if (is.null(r$imputed)) NULL else r$imputed$covered,
    clusters = clusters,
    metrics = scdeep$metrics,
    history = scdeep$history,
    config = scdeep$config,
    info = scdeep$run,
    scdeep = scdeep,
    model = .new_model(r$model)
  )
}
