"""Building blocks the networks use beyond torch's own.

Faster equivalents of standard layers:
`instance_norm`: `FastInstanceNorm2d`, instance norm that keeps the memory layout.
`nnpack`: `NnpackConv2d`, stride-1 3x3 and 7x7 convolutions through NNPACK on the CPU.
Each computes what the standard layer computes (up to float rounding) and holds the same
state-dict keys, so weights move freely between them and the reference code.

Layers of the optional improvements:
`antialias`: `BlurDownsample` and `BlurUpsample`, fixed binomial blurs for anti-aliased
sampling (as CUT); they add no state-dict key.
"""
