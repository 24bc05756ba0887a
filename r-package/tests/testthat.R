library(testthat)
library(scdeep)

test_check("scdeep")
