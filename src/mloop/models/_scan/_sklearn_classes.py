"""Snapshot of the scikit-learn classes a model pickle may reference (generated).

Regenerate with ``python -m mloop.models._scan._sklearn_classes`` after a scikit-learn
upgrade; a test checks the snapshot against the installed scikit-learn.

Why a snapshot and not a rule such as "any CamelCase name under ``sklearn.``": scikit-learn
modules re-export other libraries' classes under their own names (``sklearn.callback.
_transport.Listener`` is ``multiprocessing.connection.Listener``, which opens a socket;
``sklearn.cluster._bicluster.ABCMeta`` builds classes), and a static scanner cannot tell a
re-export from a definition without importing the module. The snapshot lists only classes
*defined* in scikit-learn (plus the Cython ``__pyx_unpickle_*`` and ``newObj`` helpers their
pickles call, which only rebuild the named class), skipping metaclasses, exceptions and the
sub-packages that download, spawn or test (``datasets``, ``callback``, ``externals``,
``utils._testing``, ``utils.estimator_checks``, tests).
"""

from __future__ import annotations

SKLEARN_VERSION = "1.9.1"

CLASSES_BY_MODULE: dict[str, str] = {
    "sklearn._cyutility": "__pyx_unpickle_Enum",
    "sklearn._loss._loss": "CyAbsoluteError CyExponentialLoss CyHalfBinomialLoss CyHalfGammaLoss CyHalfMultinomialLoss CyHalfPoissonLoss CyHalfSquaredError CyHalfTweedieLoss CyHalfTweedieLossIdentity CyHuberLoss CyLossFunction CyPinballLoss __pyx_unpickle_CyHalfMultinomialLoss",
    "sklearn._loss.link": "BaseLink HalfLogitLink IdentityLink Interval LogLink LogitLink MultinomialLogit",
    "sklearn._loss.loss": "AbsoluteError ArrayAPILossMixin BaseLoss ExponentialLoss HalfBinomialLoss HalfBinomialLossArrayAPI HalfGammaLoss HalfMultinomialLoss HalfMultinomialLossArrayAPI HalfPoissonLoss HalfPoissonLossArrayAPI HalfSquaredError HalfTweedieLoss HalfTweedieLossIdentity HuberLoss PinballLoss",
    "sklearn.base": "BaseEstimator BiclusterMixin ClassNamePrefixFeaturesOutMixin ClassifierMixin ClusterMixin DensityMixin MetaEstimatorMixin MultiOutputMixin OneToOneFeatureMixin OutlierMixin RegressorMixin TransformerMixin _UnstableArchMixin",
    "sklearn.calibration": "CalibratedClassifierCV CalibrationDisplay _CalibratedClassifier _SigmoidCalibration _TemperatureScaling",
    "sklearn.cluster._affinity_propagation": "AffinityPropagation",
    "sklearn.cluster._agglomerative": "AgglomerativeClustering FeatureAgglomeration",
    "sklearn.cluster._bicluster": "BaseSpectral SpectralBiclustering SpectralCoclustering",
    "sklearn.cluster._birch": "Birch _CFNode _CFSubcluster",
    "sklearn.cluster._bisect_k_means": "BisectingKMeans _BisectingTree",
    "sklearn.cluster._dbscan": "DBSCAN",
    "sklearn.cluster._feature_agglomeration": "AgglomerationTransform",
    "sklearn.cluster._hdbscan._tree": "TreeUnionFind __pyx_unpickle_TreeUnionFind",
    "sklearn.cluster._hdbscan.hdbscan": "HDBSCAN",
    "sklearn.cluster._hierarchical_fast": "UnionFind WeightedEdge __pyx_unpickle_UnionFind __pyx_unpickle_WeightedEdge",
    "sklearn.cluster._kmeans": "KMeans MiniBatchKMeans _BaseKMeans",
    "sklearn.cluster._mean_shift": "MeanShift",
    "sklearn.cluster._optics": "OPTICS",
    "sklearn.cluster._spectral": "SpectralClustering",
    "sklearn.compose._column_transformer": "ColumnTransformer make_column_selector",
    "sklearn.compose._target": "TransformedTargetRegressor",
    "sklearn.covariance._elliptic_envelope": "EllipticEnvelope",
    "sklearn.covariance._empirical_covariance": "EmpiricalCovariance",
    "sklearn.covariance._graph_lasso": "BaseGraphicalLasso GraphicalLasso GraphicalLassoCV",
    "sklearn.covariance._robust_covariance": "MinCovDet",
    "sklearn.covariance._shrunk_covariance": "LedoitWolf OAS ShrunkCovariance",
    "sklearn.cross_decomposition._pls": "CCA PLSCanonical PLSRegression PLSSVD _PLS",
    "sklearn.decomposition._base": "_BasePCA",
    "sklearn.decomposition._dict_learning": "DictionaryLearning MiniBatchDictionaryLearning SparseCoder _BaseSparseCoding",
    "sklearn.decomposition._factor_analysis": "FactorAnalysis",
    "sklearn.decomposition._fastica": "FastICA",
    "sklearn.decomposition._incremental_pca": "IncrementalPCA",
    "sklearn.decomposition._kernel_pca": "KernelPCA",
    "sklearn.decomposition._lda": "LatentDirichletAllocation",
    "sklearn.decomposition._nmf": "MiniBatchNMF NMF _BaseNMF",
    "sklearn.decomposition._pca": "PCA",
    "sklearn.decomposition._sparse_pca": "MiniBatchSparsePCA SparsePCA _BaseSparsePCA",
    "sklearn.decomposition._truncated_svd": "TruncatedSVD",
    "sklearn.discriminant_analysis": "DiscriminantAnalysisPredictionMixin LinearDiscriminantAnalysis QuadraticDiscriminantAnalysis",
    "sklearn.dummy": "DummyClassifier DummyRegressor",
    "sklearn.ensemble._bagging": "BaggingClassifier BaggingRegressor BaseBagging",
    "sklearn.ensemble._base": "BaseEnsemble _BaseHeterogeneousEnsemble",
    "sklearn.ensemble._forest": "BaseForest ExtraTreesClassifier ExtraTreesRegressor ForestClassifier ForestRegressor RandomForestClassifier RandomForestRegressor RandomTreesEmbedding",
    "sklearn.ensemble._gb": "BaseGradientBoosting GradientBoostingClassifier GradientBoostingRegressor VerboseReporter",
    "sklearn.ensemble._hist_gradient_boosting.binning": "_BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.common": "MonotonicConstraint",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting": "BaseHistGradientBoosting HistGradientBoostingClassifier HistGradientBoostingRegressor",
    "sklearn.ensemble._hist_gradient_boosting.grower": "TreeGrower TreeNode",
    "sklearn.ensemble._hist_gradient_boosting.histogram": "HistogramBuilder __pyx_unpickle_HistogramBuilder",
    "sklearn.ensemble._hist_gradient_boosting.predictor": "TreePredictor",
    "sklearn.ensemble._hist_gradient_boosting.splitting": "SplitInfo Splitter __pyx_unpickle_Splitter",
    "sklearn.ensemble._iforest": "IsolationForest",
    "sklearn.ensemble._stacking": "StackingClassifier StackingRegressor _BaseStacking",
    "sklearn.ensemble._voting": "VotingClassifier VotingRegressor _BaseVoting",
    "sklearn.ensemble._weight_boosting": "AdaBoostClassifier AdaBoostRegressor BaseWeightBoosting",
    "sklearn.feature_extraction._dict_vectorizer": "DictVectorizer",
    "sklearn.feature_extraction._hash": "FeatureHasher",
    "sklearn.feature_extraction.image": "PatchExtractor",
    "sklearn.feature_extraction.text": "CountVectorizer HashingVectorizer TfidfTransformer TfidfVectorizer _VectorizerMixin",
    "sklearn.feature_selection._base": "SelectorMixin",
    "sklearn.feature_selection._from_model": "SelectFromModel",
    "sklearn.feature_selection._rfe": "RFE RFECV",
    "sklearn.feature_selection._sequential": "SequentialFeatureSelector",
    "sklearn.feature_selection._univariate_selection": "GenericUnivariateSelect SelectFdr SelectFpr SelectFwe SelectKBest SelectPercentile _BaseFilter",
    "sklearn.feature_selection._variance_threshold": "VarianceThreshold",
    "sklearn.frozen._frozen": "FrozenEstimator",
    "sklearn.gaussian_process._gpc": "GaussianProcessClassifier _BinaryGaussianProcessClassifierLaplace",
    "sklearn.gaussian_process._gpr": "GaussianProcessRegressor",
    "sklearn.gaussian_process.kernels": "CompoundKernel ConstantKernel DotProduct ExpSineSquared Exponentiation GenericKernelMixin Hyperparameter Kernel KernelOperator Matern NormalizedKernelMixin PairwiseKernel Product RBF RationalQuadratic StationaryKernelMixin Sum WhiteKernel",
    "sklearn.impute._base": "MissingIndicator SimpleImputer _BaseImputer",
    "sklearn.impute._iterative": "IterativeImputer _ImputerTriplet",
    "sklearn.impute._knn": "KNNImputer",
    "sklearn.inspection._plot.decision_boundary": "DecisionBoundaryDisplay",
    "sklearn.inspection._plot.partial_dependence": "PartialDependenceDisplay",
    "sklearn.isotonic": "IsotonicRegression",
    "sklearn.kernel_approximation": "AdditiveChi2Sampler Nystroem PolynomialCountSketch RBFSampler SkewedChi2Sampler",
    "sklearn.kernel_ridge": "KernelRidge",
    "sklearn.linear_model._base": "LinearClassifierMixin LinearModel LinearRegression MultiOutputLinearModel SparseCoefMixin",
    "sklearn.linear_model._bayes": "ARDRegression BayesianRidge",
    "sklearn.linear_model._coordinate_descent": "ElasticNet ElasticNetCV Lasso LassoCV LinearModelCV MultiTaskElasticNet MultiTaskElasticNetCV MultiTaskLasso MultiTaskLassoCV",
    "sklearn.linear_model._glm._newton_solver": "NewtonCholeskySolver NewtonSolver",
    "sklearn.linear_model._glm.glm": "GammaRegressor PoissonRegressor TweedieRegressor _GeneralizedLinearRegressor",
    "sklearn.linear_model._huber": "HuberRegressor",
    "sklearn.linear_model._least_angle": "Lars LarsCV LassoLars LassoLarsCV LassoLarsIC",
    "sklearn.linear_model._linear_loss": "LinearModelLoss",
    "sklearn.linear_model._logistic": "LogisticRegression LogisticRegressionCV _LbfgsCallbackBridge",
    "sklearn.linear_model._omp": "OrthogonalMatchingPursuit OrthogonalMatchingPursuitCV",
    "sklearn.linear_model._passive_aggressive": "PassiveAggressiveClassifier PassiveAggressiveRegressor",
    "sklearn.linear_model._perceptron": "Perceptron",
    "sklearn.linear_model._quantile": "QuantileRegressor",
    "sklearn.linear_model._ransac": "RANSACRegressor",
    "sklearn.linear_model._ridge": "Ridge RidgeCV RidgeClassifier RidgeClassifierCV _BaseRidge _BaseRidgeCV _IdentityClassifier _IdentityRegressor _RidgeClassifierMixin _RidgeGCV _XT_CenterStackOp _X_CenterStackOp",
    "sklearn.linear_model._sgd_fast": "Classification EpsilonInsensitive Hinge ModifiedHuber Regression SquaredEpsilonInsensitive SquaredHinge __pyx_unpickle_Classification __pyx_unpickle_Regression",
    "sklearn.linear_model._stochastic_gradient": "BaseSGD BaseSGDClassifier BaseSGDRegressor SGDClassifier SGDOneClassSVM SGDRegressor _ValidationScoreCallback",
    "sklearn.linear_model._theil_sen": "TheilSenRegressor",
    "sklearn.manifold._classical_mds": "ClassicalMDS",
    "sklearn.manifold._isomap": "Isomap",
    "sklearn.manifold._locally_linear": "LocallyLinearEmbedding",
    "sklearn.manifold._mds": "MDS",
    "sklearn.manifold._spectral_embedding": "SpectralEmbedding",
    "sklearn.manifold._t_sne": "TSNE",
    "sklearn.metrics._dist_metrics": "BrayCurtisDistance32 BrayCurtisDistance64 CanberraDistance32 CanberraDistance64 ChebyshevDistance32 ChebyshevDistance64 DiceDistance32 DiceDistance64 DistanceMetric DistanceMetric32 DistanceMetric64 EuclideanDistance32 EuclideanDistance64 HammingDistance32 HammingDistance64 HaversineDistance32 HaversineDistance64 JaccardDistance32 JaccardDistance64 KulsinskiDistance32 KulsinskiDistance64 MahalanobisDistance32 MahalanobisDistance64 ManhattanDistance32 ManhattanDistance64 MatchingDistance32 MatchingDistance64 MinkowskiDistance32 MinkowskiDistance64 PyFuncDistance32 PyFuncDistance64 RogersTanimotoDistance32 RogersTanimotoDistance64 RussellRaoDistance32 RussellRaoDistance64 SEuclideanDistance32 SEuclideanDistance64 SokalMichenerDistance32 SokalMichenerDistance64 SokalSneathDistance32 SokalSneathDistance64 __pyx_unpickle_DistanceMetric newObj",
    "sklearn.metrics._pairwise_distances_reduction._argkmin": "ArgKmin32 ArgKmin64 EuclideanArgKmin32 EuclideanArgKmin64",
    "sklearn.metrics._pairwise_distances_reduction._argkmin_classmode": "ArgKminClassMode32 ArgKminClassMode64",
    "sklearn.metrics._pairwise_distances_reduction._base": "BaseDistancesReduction32 BaseDistancesReduction64 __pyx_unpickle_BaseDistancesReduction32 __pyx_unpickle_BaseDistancesReduction64",
    "sklearn.metrics._pairwise_distances_reduction._datasets_pair": "DatasetsPair32 DatasetsPair64 DenseDenseDatasetsPair32 DenseDenseDatasetsPair64 DenseSparseDatasetsPair32 DenseSparseDatasetsPair64 SparseDenseDatasetsPair32 SparseDenseDatasetsPair64 SparseSparseDatasetsPair32 SparseSparseDatasetsPair64 __pyx_unpickle_DatasetsPair32 __pyx_unpickle_DatasetsPair64 __pyx_unpickle_DenseDenseDatasetsPair32 __pyx_unpickle_DenseDenseDatasetsPair64 __pyx_unpickle_DenseSparseDatasetsPair32 __pyx_unpickle_DenseSparseDatasetsPair64 __pyx_unpickle_SparseDenseDatasetsPair32 __pyx_unpickle_SparseDenseDatasetsPair64 __pyx_unpickle_SparseSparseDatasetsPair32 __pyx_unpickle_SparseSparseDatasetsPair64",
    "sklearn.metrics._pairwise_distances_reduction._dispatcher": "ArgKmin ArgKminClassMode BaseDistancesReductionDispatcher RadiusNeighbors RadiusNeighborsClassMode",
    "sklearn.metrics._pairwise_distances_reduction._middle_term_computer": "DenseDenseMiddleTermComputer32 DenseDenseMiddleTermComputer64 MiddleTermComputer32 MiddleTermComputer64 SparseDenseMiddleTermComputer32 SparseDenseMiddleTermComputer64 SparseSparseMiddleTermComputer32 SparseSparseMiddleTermComputer64 __pyx_unpickle_DenseDenseMiddleTermComputer32 __pyx_unpickle_DenseDenseMiddleTermComputer64 __pyx_unpickle_MiddleTermComputer32 __pyx_unpickle_MiddleTermComputer64 __pyx_unpickle_SparseDenseMiddleTermComputer32 __pyx_unpickle_SparseDenseMiddleTermComputer64 __pyx_unpickle_SparseSparseMiddleTermComputer32 __pyx_unpickle_SparseSparseMiddleTermComputer64",
    "sklearn.metrics._pairwise_distances_reduction._radius_neighbors": "EuclideanRadiusNeighbors32 EuclideanRadiusNeighbors64 RadiusNeighbors32 RadiusNeighbors64",
    "sklearn.metrics._pairwise_distances_reduction._radius_neighbors_classmode": "RadiusNeighborsClassMode32 RadiusNeighborsClassMode64",
    "sklearn.metrics._plot.confusion_matrix": "ConfusionMatrixDisplay",
    "sklearn.metrics._plot.det_curve": "DetCurveDisplay",
    "sklearn.metrics._plot.precision_recall_curve": "PrecisionRecallDisplay",
    "sklearn.metrics._plot.regression": "PredictionErrorDisplay",
    "sklearn.metrics._plot.roc_curve": "RocCurveDisplay",
    "sklearn.metrics._scorer": "_BaseScorer _CurveScorer _MultimetricScorer _PassthroughScorer _Scorer",
    "sklearn.mixture._base": "BaseMixture",
    "sklearn.mixture._bayesian_mixture": "BayesianGaussianMixture",
    "sklearn.mixture._gaussian_mixture": "GaussianMixture",
    "sklearn.model_selection._classification_threshold": "BaseThresholdClassifier FixedThresholdClassifier TunedThresholdClassifierCV",
    "sklearn.model_selection._plot": "LearningCurveDisplay ValidationCurveDisplay _BaseCurveDisplay",
    "sklearn.model_selection._search": "BaseSearchCV GridSearchCV ParameterGrid ParameterSampler RandomizedSearchCV",
    "sklearn.model_selection._search_successive_halving": "BaseSuccessiveHalving HalvingGridSearchCV HalvingRandomSearchCV _SubsampleMetaSplitter",
    "sklearn.model_selection._split": "BaseCrossValidator BaseShuffleSplit GroupKFold GroupShuffleSplit GroupsConsumerMixin KFold LeaveOneGroupOut LeaveOneOut LeavePGroupsOut LeavePOut PredefinedSplit RepeatedKFold RepeatedStratifiedKFold ShuffleSplit StratifiedGroupKFold StratifiedKFold StratifiedShuffleSplit TimeSeriesSplit _BaseKFold _CVIterableWrapper _RepeatedSplits _UnsupportedGroupCVMixin",
    "sklearn.multiclass": "OneVsOneClassifier OneVsRestClassifier OutputCodeClassifier _ConstantPredictor",
    "sklearn.multioutput": "ClassifierChain MultiOutputClassifier MultiOutputRegressor RegressorChain _BaseChain _MultiOutputEstimator",
    "sklearn.naive_bayes": "BernoulliNB CategoricalNB ComplementNB GaussianNB MultinomialNB _BaseDiscreteNB _BaseNB",
    "sklearn.neighbors._ball_tree": "BallTree BallTree32 BallTree64 BinaryTree32 BinaryTree64 NeighborsHeap32 NeighborsHeap64 NodeHeap newObj",
    "sklearn.neighbors._base": "KNeighborsMixin NeighborsBase RadiusNeighborsMixin",
    "sklearn.neighbors._classification": "KNeighborsClassifier RadiusNeighborsClassifier",
    "sklearn.neighbors._graph": "KNeighborsTransformer RadiusNeighborsTransformer",
    "sklearn.neighbors._kd_tree": "BinaryTree32 BinaryTree64 KDTree KDTree32 KDTree64 NeighborsHeap32 NeighborsHeap64 NodeHeap newObj",
    "sklearn.neighbors._kde": "KernelDensity",
    "sklearn.neighbors._lof": "LocalOutlierFactor",
    "sklearn.neighbors._nca": "NeighborhoodComponentsAnalysis",
    "sklearn.neighbors._nearest_centroid": "NearestCentroid",
    "sklearn.neighbors._quad_tree": "_QuadTree",
    "sklearn.neighbors._regression": "KNeighborsRegressor RadiusNeighborsRegressor",
    "sklearn.neighbors._unsupervised": "NearestNeighbors",
    "sklearn.neural_network._multilayer_perceptron": "BaseMultilayerPerceptron MLPClassifier MLPRegressor",
    "sklearn.neural_network._rbm": "BernoulliRBM",
    "sklearn.neural_network._stochastic_optimizers": "AdamOptimizer BaseOptimizer SGDOptimizer",
    "sklearn.pipeline": "FeatureUnion Pipeline",
    "sklearn.preprocessing._data": "Binarizer KernelCenterer MaxAbsScaler MinMaxScaler Normalizer PowerTransformer QuantileTransformer RobustScaler StandardScaler",
    "sklearn.preprocessing._discretization": "KBinsDiscretizer",
    "sklearn.preprocessing._encoders": "OneHotEncoder OrdinalEncoder _BaseEncoder",
    "sklearn.preprocessing._function_transformer": "FunctionTransformer",
    "sklearn.preprocessing._label": "LabelBinarizer LabelEncoder MultiLabelBinarizer",
    "sklearn.preprocessing._polynomial": "PolynomialFeatures SplineTransformer",
    "sklearn.preprocessing._target_encoder": "TargetEncoder",
    "sklearn.random_projection": "BaseRandomProjection GaussianRandomProjection SparseRandomProjection",
    "sklearn.semi_supervised._label_propagation": "BaseLabelPropagation LabelPropagation LabelSpreading",
    "sklearn.semi_supervised._self_training": "SelfTrainingClassifier",
    "sklearn.svm._base": "BaseLibSVM BaseSVC",
    "sklearn.svm._classes": "LinearSVC LinearSVR NuSVC NuSVR OneClassSVM SVC SVR",
    "sklearn.tree._classes": "BaseDecisionTree DecisionTreeClassifier DecisionTreeRegressor ExtraTreeClassifier ExtraTreeRegressor",
    "sklearn.tree._criterion": "ClassificationCriterion Criterion Entropy Gini MAE MSE Poisson RegressionCriterion __pyx_unpickle_Criterion",
    "sklearn.tree._export": "Sentinel _BaseTreeExporter _DOTTreeExporter _MPLTreeExporter",
    "sklearn.tree._partitioner": "DensePartitioner SparsePartitioner __pyx_unpickle_DensePartitioner __pyx_unpickle_SparsePartitioner",
    "sklearn.tree._reingold_tilford": "DrawTree Tree",
    "sklearn.tree._splitter": "BestSparseSplitter BestSplitter RandomSparseSplitter RandomSplitter Splitter",
    "sklearn.tree._tree": "BestFirstTreeBuilder DepthFirstTreeBuilder Tree TreeBuilder _AlphaPruner _CCPPruneController _PathFinder __pyx_unpickle_TreeBuilder __pyx_unpickle__CCPPruneController",
    "sklearn.tree._utils": "PytestWeightedFenwickTree WeightedFenwickTree",
    "sklearn.utils._array_api": "NamespaceAndDevice",
    "sklearn.utils._available_if": "_AvailableIfDescriptor",
    "sklearn.utils._bunch": "Bunch",
    "sklearn.utils._cython_blas": "BLAS_Order BLAS_Trans",
    "sklearn.utils._encode": "MissingValues _NaNCounter _nandict",
    "sklearn.utils._fast_dict": "IntFloatDict __pyx_unpickle_IntFloatDict",
    "sklearn.utils._isfinite": "FiniteStatus",
    "sklearn.utils._metadata_requests": "MetadataRequest MetadataRouter MethodMapping MethodMetadataRequest MethodPair RequestMethod RouterMappingPair _MetadataRequester _RoutingNotSupportedMixin",
    "sklearn.utils._mocking": "ArraySlicingWrapper CheckingClassifier MockDataFrame NoSampleWeightWrapper _MockEstimatorOnOffPrediction",
    "sklearn.utils._param_validation": "HasMethods Hidden Interval MissingValues Options RealNotInt StrOptions _ArrayLikes _Booleans _CVObjects _Callables _Constraint _InstancesOf _IterablesNotString _NanConstraint _NoneConstraint _PandasNAConstraint _RandomStates _SparseMatrices _VerboseHelper",
    "sklearn.utils._plotting": "_BinaryClassifierCurveDisplayMixin",
    "sklearn.utils._pprint": "KeyValTuple KeyValTupleParam _EstimatorPrettyPrinter",
    "sklearn.utils._seq_dataset": "ArrayDataset32 ArrayDataset64 CSRDataset32 CSRDataset64 SequentialDataset32 SequentialDataset64",
    "sklearn.utils._set_output": "ContainerAdapterProtocol ContainerAdaptersManager PandasAdapter PolarsAdapter _SetOutputMixin",
    "sklearn.utils._tags": "ClassifierTags InputTags RegressorTags Tags TargetTags TransformerTags",
    "sklearn.utils._vector_sentinel": "StdVectorSentinel StdVectorSentinelFloat64 StdVectorSentinelInt32 StdVectorSentinelInt64 StdVectorSentinelIntP __pyx_unpickle_StdVectorSentinel __pyx_unpickle_StdVectorSentinelFloat64 __pyx_unpickle_StdVectorSentinelInt32 __pyx_unpickle_StdVectorSentinelInt64 __pyx_unpickle_StdVectorSentinelIntP",
    "sklearn.utils._weight_vector": "WeightVector32 WeightVector64",
    "sklearn.utils.deprecation": "deprecated",
    "sklearn.utils.metaestimators": "_BaseComposition",
    "sklearn.utils.parallel": "Parallel _FuncWrapper",
}

_DENIED_SUBTREES = (
    "sklearn.datasets",
    "sklearn.externals",
    "sklearn.callback",
    "sklearn.utils._testing",
    "sklearn.utils.estimator_checks",
    "sklearn.utils._test_common",
    "sklearn._build_utils",
    "sklearn.__check_build",
    "sklearn.conftest",
    "sklearn.experimental",
    "sklearn.utils._show_versions",
    "sklearn.utils._repr_html",
    "sklearn.utils.discovery",
)


def _denied(module: str) -> bool:
    return (
        any(module == d or module.startswith(d + ".") for d in _DENIED_SUBTREES)
        or ".tests" in module
        or module.rsplit(".", 1)[-1].startswith("test_")
    )


def defined_in_installed_sklearn() -> dict[str, set[str]]:
    """Walk the installed scikit-learn and list what the snapshot should hold."""
    import importlib
    import pkgutil
    import warnings

    import sklearn

    found: dict[str, set[str]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for info in pkgutil.walk_packages(sklearn.__path__, "sklearn."):
            if _denied(info.name):
                continue
            try:
                module = importlib.import_module(info.name)
            except Exception:  # a submodule whose optional dependency is missing
                continue
            for attr, value in vars(module).items():
                if isinstance(value, type):
                    if value.__module__ != info.name or value.__name__ != attr:
                        continue
                    if issubclass(value, type | BaseException):
                        continue
                    found.setdefault(info.name, set()).add(attr)
                elif callable(value) and (attr.startswith("__pyx_unpickle_") or attr == "newObj"):
                    found.setdefault(info.name, set()).add(attr)
    return found


if __name__ == "__main__":  # pragma: no cover - a maintenance tool
    for name, attrs in sorted(defined_in_installed_sklearn().items()):
        print(f'    "{name}": "{" ".join(sorted(attrs))}",')
