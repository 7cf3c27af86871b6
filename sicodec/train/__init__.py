"""Training: image-folder data, rate-distortion losses and a resumable training loop."""
