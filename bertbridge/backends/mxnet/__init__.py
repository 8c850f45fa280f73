"""The MXNet (GluonNLP) backend: registered, reports availability; training arrives in its own release."""
