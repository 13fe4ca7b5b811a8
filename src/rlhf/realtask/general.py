"""What alignment may cost: general questions with checkable answers, and held-out general text.

``QUESTIONS``: short factual questions, each with the words any right answer names (one of them
suffices, matched as whole words, case-insensitive). The demo counts the base model's right
answers and, for every later model, the share of those still right.

``HELDOUT_TEXT``: paragraphs of plain encyclopedic prose written for this project; a model's
token-mean NLL on them rising above the base model's is forgetting.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

QUESTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("What is the capital of France?", ("paris",)),
    ("What is the capital of Japan?", ("tokyo",)),
    ("What is the capital of Italy?", ("rome",)),
    ("What is the capital of Germany?", ("berlin",)),
    ("What is the capital of Spain?", ("madrid",)),
    ("What is the capital of Canada?", ("ottawa",)),
    ("What is the capital of Egypt?", ("cairo",)),
    ("What is the capital of Russia?", ("moscow",)),
    ("What is the capital of the United Kingdom?", ("london",)),
    ("What is the capital of China?", ("beijing",)),
    ("What is the largest planet in our solar system?", ("jupiter",)),
    ("Which planet is known as the Red Planet?", ("mars",)),
    ("What is the closest star to Earth?", ("sun",)),
    ("What is the chemical symbol for water?", ("h2o",)),
    ("What gas do plants absorb from the air?", ("carbon dioxide", "co2")),
    ("What is the freezing point of water in degrees Celsius?", ("0", "zero")),
    ("What is the boiling point of water in degrees Celsius?", ("100",)),
    ("How many days are there in a week?", ("7", "seven")),
    ("How many continents are there?", ("7", "seven")),
    ("How many legs does a spider have?", ("8", "eight")),
    ("How many sides does a triangle have?", ("3", "three")),
    ("What is 2 plus 2?", ("4", "four")),
    ("What is 10 times 10?", ("100",)),
    ("Who wrote Romeo and Juliet?", ("shakespeare",)),
    ("Who painted the Mona Lisa?", ("leonardo", "da vinci")),
    ("Who developed the theory of relativity?", ("einstein",)),
    ("Who was the first president of the United States?", ("washington",)),
    ("What is the largest ocean on Earth?", ("pacific",)),
    ("What is the longest river in Africa?", ("nile",)),
    ("What language is mainly spoken in Brazil?", ("portuguese",)),
    ("What is the tallest mountain in the world?", ("everest",)),
    ("What do bees make?", ("honey",)),
    ("What is the largest mammal?", ("whale",)),
    ("What color is the sky on a clear day?", ("blue",)),
    ("What is the main ingredient of guacamole?", ("avocado", "avocados")),
    ("What is the hardest natural substance?", ("diamond", "diamonds")),
    ("Which organ pumps blood through the body?", ("heart",)),
    ("What is the currency of Japan?", ("yen",)),
    ("In which country are the pyramids of Giza?", ("egypt",)),
    ("What is the opposite of hot?", ("cold",)),
)
"""(question, accepted answer words)"""


DEV_QUESTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("What is the capital of Turkey?", ("ankara",)),
    ("What is the capital of Cuba?", ("havana",)),
    ("What is the capital of Peru?", ("lima",)),
    ("What is the capital of Finland?", ("helsinki",)),
    ("What is the capital of Denmark?", ("copenhagen",)),
    ("What is the capital of Belgium?", ("brussels",)),
    ("What is the capital of Hungary?", ("budapest",)),
    ("What is the largest continent?", ("asia",)),
    ("What is the chemical symbol for iron?", ("fe",)),
    ("How many wheels does a bicycle have?", ("2", "two")),
    ("How many days are in a leap year?", ("366",)),
    ("What is 7 times 8?", ("56",)),
    ("Who wrote The Old Man and the Sea?", ("hemingway",)),
    ("Who painted the ceiling of the Sistine Chapel?", ("michelangelo",)),
    ("Who formulated the laws of motion and universal gravitation?", ("newton",)),
    ("What is the largest land animal?", ("elephant", "elephants")),
    ("What color is a ripe banana?", ("yellow",)),
    ("What is frozen water called?", ("ice",)),
    ("Which animal has black and white stripes?", ("zebra", "zebras")),
    ("What is the currency of the United Kingdom?", ("pound", "pounds", "sterling")),
    ("What is the currency of the United States?", ("dollar", "dollars")),
    ("In which country is the Eiffel Tower?", ("france",)),
    ("What language is mainly spoken in Italy?", ("italian",)),
    ("What is the opposite of up?", ("down",)),
    ("What color is grass?", ("green",)),
    ("What shape has four equal sides and four right angles?", ("square",)),
    ("Which planet do we live on?", ("earth",)),
    ("What fruit is wine usually made from?", ("grape", "grapes")),
    ("What is the tallest animal in the world?", ("giraffe", "giraffes")),
    ("What do you call a young dog?", ("puppy",)),
)
"""general questions for choosing the preset's settings (``bench/smollm_dev.py``), as the dev
split of the prompt families is: none is one of ``QUESTIONS``, and none is a replay question or
shares an answer with one (``tests/realtask/test_replay.py``), so the figures reported are never
read to choose a setting and replay cannot teach these answers"""


def right(answers: Sequence[str], response: str) -> bool:
    """Whether ``response`` names one of ``answers`` as whole words ("Paris." yes, "Parisian" no)."""
    text = response.lower()
    return any(re.search(r"(?<![a-z0-9])" + re.escape(a) + r"(?![a-z0-9])", text) for a in answers)


def kept(base_right: Sequence[bool], model_right: Sequence[bool]) -> float:
    """Share of the questions the base model answered right that the model still answers right."""
    if len(base_right) != len(model_right):
        raise ValueError(f"kept got {len(base_right)} base answers but {len(model_right)} model answers")
    hits = [m for b, m in zip(base_right, model_right) if b]
    if not hits:
        raise ValueError("the base model answered no general question right; nothing to keep")
    return sum(hits) / len(hits)


HELDOUT_TEXT: tuple[str, ...] = (
    "The river rises in a ring of low hills and runs for about two hundred miles before it reaches the "
    "sea. Along its banks, farmers grow wheat and barley on terraces that their grandparents built, and in "
    "spring the water turns brown with the soil washed down from the slopes. Three stone bridges cross it, "
    "the oldest of them built more than six hundred years ago.",
    "Bread is one of the oldest prepared foods. Early bakers mixed ground grain with water and cooked the "
    "paste on hot stones. Leavened bread came later, when people noticed that dough left to stand grew "
    "light and sour. Today most bakeries use cultivated yeast, but many still keep a sourdough starter that "
    "is fed with flour and water every day.",
    "A library lends books, but it also keeps records of a town's life: newspapers, maps, letters and "
    "photographs. Librarians sort these materials so that a reader can find them, and they repair old "
    "volumes whose bindings have worn out. Many libraries now lend laptops and offer free classes on how to "
    "use the internet.",
    "Migratory birds travel thousands of miles each year between their summer and winter homes. They find "
    "their way by the position of the sun and the stars, by the Earth's magnetic field and by landmarks such "
    "as coastlines and mountain ranges. Before a long flight, many species eat far more than usual and store "
    "the energy as fat.",
    "The first railways carried coal from mines to rivers and ports. Within a few decades, lines connected "
    "most large cities, and a journey that had taken days by coach took hours. Towns grew around stations, "
    "clocks were set to a common time so that timetables made sense, and fresh food could reach markets far "
    "from the farms where it was grown.",
    "Volcanoes form where molten rock from deep inside the Earth reaches the surface. Some erupt violently, "
    "throwing ash high into the sky, while others release slow rivers of lava. The soil around an old "
    "volcano is often very fertile, which is why villages and farms are found on slopes that could one day "
    "erupt again.",
    "A good night's sleep helps the body repair itself and the mind store what it learned during the day. "
    "Most adults need seven to nine hours. Keeping a regular bedtime, avoiding bright screens late at night "
    "and keeping the bedroom cool and dark are simple habits that make falling asleep easier.",
    "Chess is played on a board of sixty-four squares by two players, one with the white pieces and one with "
    "the black. Each kind of piece moves in its own way: the rook along rows and columns, the bishop along "
    "diagonals, the knight in an L shape. The game ends when one king is attacked and cannot escape.",
)


DEV_TEXT: tuple[str, ...] = (
    "Tea is made by pouring hot water over the dried leaves of a shrub first grown in southern China. "
    "Green tea comes from leaves that are heated soon after picking, while black tea comes from leaves that "
    "are left to darken in the air before they are dried. In many countries a cup of tea is the first thing "
    "offered to a guest.",
    "A lighthouse is a tower with a bright lamp at the top that warns ships away from rocks and shallow "
    "water. Each lighthouse flashes in its own pattern, so that sailors at night can tell which one they are "
    "looking at. Most are now run by machines, but for centuries keepers lived beside them and climbed the "
    "stairs every evening to light the lamp.",
    "Honeybees live in colonies of many thousands. A single queen lays the eggs, while the workers gather "
    "nectar and pollen, build the wax comb and care for the young. When a worker finds a good patch of "
    "flowers, it returns to the hive and dances to show the others which way to fly and how far.",
    "Glass is made by melting sand with soda and lime in a very hot furnace. While it is soft, it can be "
    "blown into bottles, pressed into dishes or rolled flat into windows. Old glass can be crushed and "
    "melted again, so a jar thrown into a recycling bin may come back as a new jar within a few weeks.",
    "Maps shrink the world onto a sheet of paper. A scale tells the reader how many miles one inch stands "
    "for, and a legend explains the symbols for roads, rivers and towns. Because the Earth is round, every "
    "flat map stretches some places and squeezes others, and mapmakers choose which distortion matters "
    "least.",
    "A marathon is a running race of a little over forty-two kilometres. The distance recalls the story of a "
    "Greek messenger who ran from the town of Marathon to Athens with news of a victory. Today hundreds of "
    "cities hold marathons every year, and most runners train for months before they try one.",
)
"""paragraphs of the same kind as ``HELDOUT_TEXT``, on other subjects, for choosing the preset's
settings (``bench/smollm_dev.py``): a model's NLL on them rising is forgetting, read without
reading the reported figure"""
