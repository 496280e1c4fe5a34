"""The fixed choices of export options, in a module that imports nothing.

The command's parser and the Slicer module's parameter node offer these before the rest of the
engine (numpy, pydicom, highdicom) is loaded, or can be: in Slicer only once the requirements are met.
"""

#: ExportOptions.registration_class values: the SOP class to write ("auto": Spatial Registration
#: for a linear transform, else Deformable Spatial Registration).
REGISTRATION_CLASSES = ("auto", "spatial", "deformable")

#: ExportOptions.undefined_vectors values: refuse NaN vectors, or write them as "undefined here".
UNDEFINED_VECTOR_CHOICES = ("refuse", "undefined")
