/* placeholder: replaced by the model work */
