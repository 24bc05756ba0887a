//! What highly-variable-gene selection returns, whatever the flavour (a leaf: the
//! dispatcher in hvg.rs and the seurat_v3 flavour both build it).

#[derive(Debug, Clone)]
pub struct HvgResult {
    pub means: Vec<f64>,
    /// seurat/cell_ranger: dispersions; seurat_v3: variances; variance: variances.
    pub dispersions: Vec<f64>,
    /// seurat/cell_ranger: normalised dispersions; seurat_v3: normalised variances.
    pub dispersions_norm: Vec<f64>,
    pub highly_variable: Vec<bool>,
}

impl HvgResult {
    pub fn selected(&self) -> Vec<usize> {
        (0..self.highly_variable.len()).filter(|&j| self.highly_variable[j]).collect()
    }
}
