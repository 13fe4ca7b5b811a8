"""Pure loss functions: tensors in, tensors out. No models, no data loading."""
