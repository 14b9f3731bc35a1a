"""Invented listings and guests: street addresses and names with the accents a real account has."""

# Distinct streets, so every listing's lock matches it clearly and the mapping auto-confirms.
STREETS = [
    ("Rua Augusta", "São Paulo"), ("Rua Oscar Freire", "São Paulo"), ("Avenida Paulista", "São Paulo"),
    ("Rua da Consolação", "São Paulo"), ("Alameda Santos", "São Paulo"), ("Rua Haddock Lobo", "São Paulo"),
    ("Rua Bela Cintra", "São Paulo"), ("Rua Frei Caneca", "São Paulo"), ("Rua Teodoro Sampaio", "São Paulo"),
    ("Rua Cardeal Arcoverde", "São Paulo"), ("Rua Harmonia", "São Paulo"), ("Rua Aspicuelta", "São Paulo"),
    ("Rua Fradique Coutinho", "São Paulo"), ("Rua Mourato Coelho", "São Paulo"), ("Rua Joaquim Antunes", "São Paulo"),
    ("Rua Lisboa", "São Paulo"), ("Rua Capote Valente", "São Paulo"), ("Rua Artur de Azevedo", "São Paulo"),
    ("Rua Simão Álvares", "São Paulo"), ("Alameda Lorena", "São Paulo"), ("Avenida Atlântica", "Rio de Janeiro"),
    ("Rua Barata Ribeiro", "Rio de Janeiro"), ("Rua Santa Clara", "Rio de Janeiro"), ("Rua Siqueira Campos", "Rio de Janeiro"),
    ("Rua Figueiredo Magalhães", "Rio de Janeiro"), ("Rua Visconde de Pirajá", "Rio de Janeiro"),
    ("Rua Farme de Amoedo", "Rio de Janeiro"), ("Rua Vinícius de Moraes", "Rio de Janeiro"),
    ("Rua Garcia d'Ávila", "Rio de Janeiro"), ("Rua Aníbal de Mendonça", "Rio de Janeiro"),
    ("Avenida Delfim Moreira", "Rio de Janeiro"), ("Rua Dias Ferreira", "Rio de Janeiro"),
    ("Rua General Urquiza", "Rio de Janeiro"), ("Rua Ataulfo de Paiva", "Rio de Janeiro"),
    ("Rua Voluntários da Pátria", "Rio de Janeiro"), ("Rua São Clemente", "Rio de Janeiro"),
    ("Rua Real Grandeza", "Rio de Janeiro"), ("Rua Paissandu", "Rio de Janeiro"), ("Rua do Catete", "Rio de Janeiro"),
    ("Rua Almirante Tamandaré", "Rio de Janeiro"), ("Rua Gregório de Matos", "Salvador"), ("Rua Chile", "Salvador"),
    ("Avenida Sete de Setembro", "Salvador"), ("Rua da Paciência", "Salvador"), ("Rua do Mucugê", "Porto Seguro"),
    ("Avenida Macedo Soares", "Campos do Jordão"), ("Rua Djalma Forjaz", "Campos do Jordão"),
    ("Rua Bocaiúva", "Florianópolis"), ("Avenida Beira-Mar Norte", "Florianópolis"), ("Rua das Gaivotas", "Florianópolis"),
    ("Rua Padre Chagas", "Porto Alegre"), ("Rua Fernando Gomes", "Porto Alegre"), ("Avenida Boa Viagem", "Recife"),
    ("Rua da Aurora", "Recife"), ("Rua do Bom Jesus", "Recife"), ("Avenida Beira Mar", "Fortaleza"),
    ("Rua Dragão do Mar", "Fortaleza"), ("Rua Ponta Negra", "Natal"), ("Rua Chile Natal", "Natal"),
    ("Avenida Afonso Pena", "Belo Horizonte"),
]
FIRST_NAMES = ["Maria", "João", "Ana", "Pedro", "Luíza", "Carlos", "Fernanda", "Rafael", "Juliana", "Lucas",
               "Beatriz", "Gabriel", "Camila", "Mateus", "Larissa", "Thiago", "Letícia", "José", "Élise", "Zoë", "Björn",
               "Siobhán"]
LAST_NAMES = ["Silva", "Santos", "Oliveira", "Souza", "Pereira", "Costa", "Rodrigues", "Almeida", "Lima", "Araújo"]
