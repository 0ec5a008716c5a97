"""``python -m tokvec ...`` (also what ``torchrun -m tokvec`` runs)."""

from .cli import main

if __name__ == "__main__":
    main()
