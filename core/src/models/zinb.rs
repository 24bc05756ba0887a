//! The zero-inflated negative binomial likelihood (scRAE, specs §7), computed in double
//! precision and written so that no branch produces NaN or a cancellation at the extremes:
//!
//! NB(x; μ, θ) = Γ(x+θ) / (Γ(θ) x!) · (θ/(θ+μ))^θ · (μ/(θ+μ))^x, θ the inverse dispersion;
//! ZINB(0) = π + (1−π)·NB(0), ZINB(x>0) = (1−π)·NB(x), π = sigmoid(logit).
//!
//! - θ·log(θ/(θ+μ)) is −θ·softplus(log μ − log θ): finite and → −μ as θ → ∞ (Poisson).
//! - log Γ(x+θ) − log Γ(θ) is computed by Stirling's series for θ ≥ 10⁴, where the two
//!   log-gammas are huge and nearly equal: x·log(x+θ) + (θ−½)·log1p(x/θ) − x
//!   + 1/(12(x+θ)) − 1/(12θ) (next term O(θ⁻³)). Below, the log-gammas directly.
//! - The model side passes log μ (`zinb_nll_log`); from μ, it is clamped at 1e-30, so
//!   μ → 0 gives a large finite value, never 0·(−∞).
//! - x = 0: log(π + (1−π)NB(0)) = logaddexp(−softplus(−logit), −softplus(logit) + log NB(0)).
//! - Non-integer x (RPKM, scaled log values) are accepted: Γ handles them.

use tch::{Kind, Tensor};

const STIRLING_FROM: f64 = 1e4;

/// log Γ(x+θ) − log Γ(θ), without cancellation for large θ.
fn lgamma_ratio(x: &Tensor, theta: &Tensor) -> Tensor {
    let small = theta.clamp_max(STIRLING_FROM);
    let direct = (x + &small).lgamma() - small.lgamma();
    let big = theta.clamp_min(STIRLING_FROM);
    let xb = x + &big;
    let stirling = x * xb.log() + (&big - 0.5) * (x / &big).log1p() - x + (xb.reciprocal() - big.reciprocal()) / 12.0;
    direct.where_self(&theta.lt(STIRLING_FROM), &stirling)
}

/// log NB(x; μ, θ) elementwise (double), from log μ: θ·log(θ/(θ+μ)) = −θ·softplus(log μ −
/// log θ) and log(μ/(θ+μ)) = log μ − logaddexp(log θ, log μ), finite for any log μ and
/// with derivatives in log μ bounded by x + θ.
pub fn nb_log_prob_log(x: &Tensor, log_mu: &Tensor, theta: &Tensor) -> Tensor {
    let (x, log_mu, theta) = (x.to_kind(Kind::Double), log_mu.to_kind(Kind::Double), theta.to_kind(Kind::Double));
    let log_theta = theta.log();
    let log_theta_mu = log_theta.logaddexp(&log_mu);
    lgamma_ratio(&x, &theta) - (&x + 1.0).lgamma() - &theta * (&log_mu - &log_theta).softplus() + &x * (&log_mu - log_theta_mu)
}

/// Negative ZINB log-likelihood elementwise (double, the shape of the broadcast inputs)
/// from the log mean: counts `x`, `log_mu`, inverse dispersion `theta` (> 0),
/// zero-inflation `logit`.
pub fn zinb_nll_log(x: &Tensor, log_mu: &Tensor, theta: &Tensor, logit: &Tensor) -> Tensor {
    let xd = x.to_kind(Kind::Double);
    let logit = logit.to_kind(Kind::Double);
    let log_nb = nb_log_prob_log(&xd, log_mu, theta);
    let log_pi = -(-&logit).softplus();
    let log_not_pi = -logit.softplus();
    let zero = log_pi.logaddexp(&(&log_not_pi + &log_nb));
    let nonzero = &log_not_pi + &log_nb;
    -zero.where_self(&xd.eq(0.0), &nonzero)
}

/// `zinb_nll_log` from the mean `mu` (clamped at 1e-30, so μ → 0 stays finite).
pub fn zinb_nll(x: &Tensor, mu: &Tensor, theta: &Tensor, logit: &Tensor) -> Tensor {
    zinb_nll_log(x, &mu.to_kind(Kind::Double).clamp_min(1e-30).log(), theta, logit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f64]) -> Tensor {
        Tensor::from_slice(v)
    }

    #[test]
    fn poisson_limit_and_zero_branch() {
        // θ → ∞ with no inflation: the Poisson log pmf x log μ − μ − log x!
        let x = t(&[0.0, 3.0, 50.0]);
        let mu = t(&[2.0, 2.0, 40.0]);
        let nll = zinb_nll(&x, &mu, &t(&[1e15, 1e15, 1e15]), &t(&[-60.0, -60.0, -60.0]));
        let got = Vec::<f64>::try_from(&nll).unwrap();
        for (i, (&xi, &mi)) in [0.0, 3.0, 50.0].iter().zip(&[2.0, 2.0, 40.0]).enumerate() {
            let lg = Tensor::from(xi + 1.0f64).lgamma().double_value(&[]);
            let want = -(xi * f64::ln(mi) - mi - lg);
            assert!((got[i] - want).abs() < 1e-6 * (1.0 + want.abs()), "x={xi}: {} vs {want}", got[i]);
        }
        // all inflation: P(0) = 1, P(x > 0) → 0
        let nll = zinb_nll(&t(&[0.0]), &t(&[5.0]), &t(&[1.0]), &t(&[60.0]));
        assert!(nll.double_value(&[0]).abs() < 1e-12);
    }

    #[test]
    fn finite_values_and_gradients_at_the_extremes() {
        let x = t(&[0.0, 0.0, 1.0, 7.0, 1000.0, 0.0, 2.5]);
        let mu = t(&[0.0, 1e-12, 1e-12, 1e6, 1e-3, 1e8, 3.0]).set_requires_grad(true);
        let theta = t(&[1e-9, 1e12, 1e-6, 1e9, 1e4, 1e-4, 1e4 - 1e-9]).set_requires_grad(true);
        let logit = t(&[0.0, 30.0, -30.0, 0.0, 5.0, -5.0, 0.0]).set_requires_grad(true);
        let nll = zinb_nll(&x, &mu, &theta, &logit);
        assert!(bool::try_from(nll.isfinite().all()).unwrap(), "{nll}");
        nll.sum(Kind::Double).backward();
        for g in [mu.grad(), theta.grad(), logit.grad()] {
            assert!(bool::try_from(g.isfinite().all()).unwrap(), "{g}");
        }
        // from log μ, a mean far below f32's range keeps finite, bounded derivatives
        // (∂/∂log μ of x·log μ is x), which μ itself cannot (∂/∂μ ≈ −x/μ)
        let log_mu = t(&[-200.0, -90.0, 0.0, 30.0]).set_requires_grad(true);
        let nll = zinb_nll_log(&t(&[1000.0, 5.0, 0.0, 1e5]), &log_mu, &t(&[0.5, 10.0, 1e6, 2.0]), &t(&[0.0; 4]));
        nll.sum(Kind::Double).backward();
        let g = Vec::<f64>::try_from(&log_mu.grad()).unwrap();
        assert!(g.iter().all(|v| v.is_finite() && v.abs() <= 1e5 + 2.0 + 1e-6), "{g:?}");
        // the Stirling branch (θ >= 1e4) agrees with the direct log-gammas where both are exact
        let (xs, th) = (t(&[0.0, 1.0, 30.0, 5000.0]), t(&[1e4; 4]));
        let diff = (lgamma_ratio(&xs, &th) - ((&xs + &th).lgamma() - th.lgamma())).abs().max().double_value(&[]);
        assert!(diff < 1e-9, "Stirling vs lgamma at 1e4: {diff}");
    }
}
