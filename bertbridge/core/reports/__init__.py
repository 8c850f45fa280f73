"""What a saved model folder tells a reader about its training run: the run record
(``training_history.json``), the curves (``training_curves.png``) and the model card (``README.md``).

Framework-neutral and below the tasks: :func:`bertbridge.core.tasks.saving.save_model_folder`
writes all three into the folder it is staging.
"""
